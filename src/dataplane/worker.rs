//! One worker per parent RX queue, pinned to a core.
//!
//! The worker owns one UMEM and every ring on it: the parent's socket on its
//! queue and one socket per veth endpoint on the same queue number, so a frame
//! moves from one ring to another by descriptor. TAP endpoints are read and
//! written with one syscall per frame. Group frames from the wire arrive as
//! copies over a bounded channel from the group listener.
//!
//! Per iteration: commands, parent RX, endpoint RX, flood queue, then one
//! flush per destination, completion reaping and fill-ring refill; poll()
//! only when an iteration found nothing to do.
//!
//! Jumbo frames: a frame longer than one UMEM frame arrives on a socket
//! bound with `XDP_USE_SG` as a chain of descriptors, all but the last
//! marked `XDP_PKT_CONTD` (or from a TAP, longer than one frame). The
//! worker's jumbo lane gathers it into one buffer (the chain's frames go
//! back to the pool at once), classifies it there like any frame, and
//! copies it out: as a chain for a socket, whole for a TAP. A chain is
//! staged, transmitted and dropped whole, never cut. Frames of one UMEM
//! frame, nearly all of them, never enter the lane.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, TryRecvError};

use super::limit::{Limiters, TokenBucket};
use super::pool::{FramePool, Inflight, USER};
use super::port::{Desc, FrameMem, Frames, Kernel, Ports, TapIo, XskIo};
use crate::config::Poll;
use crate::io::xsk::XskStats;
use crate::metrics::{bump, Source, WorkerStats};
use crate::switch::{
    classify_egress, classify_ingress, flood_targets, ingress_drop_endpoint, snoop_egress,
    snoop_query, DropReason, EndpointId, Fdb, Flood, GroupTable, SnoopEvent, Verdict,
};
use crate::wire::{ETHERTYPE_VLAN, ETH_HEADER_LEN, VLAN_TAG_LEN};

/// How an endpoint is reached from this worker.
pub enum EndpointIo<P: Ports = Kernel> {
    /// The host end of a veth, through an AF_XDP socket on this worker's UMEM.
    /// It receives the container's egress only where mvdp's XDP port program
    /// steers it there; a fast-path endpoint's egress comes through the punt
    /// port instead, and its socket only transmits.
    Xsk {
        /// The socket.
        socket: P::Socket,
        /// Whether frames arrive on it (its fill ring is kept posted).
        receives: bool,
    },
    /// A TAP fd. `read` is true on the one worker that reads the container's egress.
    Tap {
        /// The device.
        port: P::Tap,
        /// Whether this worker reads from it.
        read: bool,
    },
}

/// A broadcast or multicast frame from the wire, classified once by the
/// group listener against its FDB snapshot.
#[derive(Debug)]
pub struct GroupFrame {
    /// The listener's verdict: a flood, or the one endpoint that takes it.
    pub verdict: Verdict,
    /// The frame. The worker hands the buffer back for reuse.
    pub buf: Vec<u8>,
}

/// Messages from the control thread to a worker.
pub enum Command<P: Ports = Kernel> {
    /// A new FDB snapshot to classify with.
    Fdb(Arc<Fdb>),
    /// A new multicast group table to flood snooped groups by.
    Groups(Arc<GroupTable>),
    /// Start serving an endpoint.
    AddPort(EndpointId, EndpointIo<P>),
    /// Stop serving an endpoint; frames still staged for it are dropped.
    RemovePort(EndpointId),
    /// Serve one more of the group listener's queues (a network added at run time).
    AddFloodQueue(Receiver<GroupFrame>),
    /// Read the fast path's punt device through this socket: frames it
    /// could not decide, under an 802.1ad tag whose VID is the sender's id.
    SetPunt(P::Socket),
    /// Leave the loop.
    Stop,
}

/// Everything a worker needs, built by the control thread.
pub struct WorkerConfig<P: Ports = Kernel> {
    /// Parent RX queue served.
    pub queue: u32,
    /// Core to pin to, if any.
    pub core: Option<core_affinity::CoreId>,
    /// The worker's UMEM and its frames.
    pub umem: Frames<P>,
    /// The parent's socket on `queue`.
    pub parent: P::Socket,
    /// The FDB to start with.
    pub fdb: Arc<Fdb>,
    /// Frames per RX batch.
    pub batch: usize,
    /// Fill-ring entries kept posted on the parent socket.
    pub parent_fill: usize,
    /// Fill-ring entries kept posted on the punt device's socket.
    pub punt_fill: usize,
    /// Fill-ring entries the endpoint sockets share: each keeps its share
    /// posted (at most [`MAX_PORT_FILL`], at least [`MIN_PORT_FILL`]), the
    /// share recomputed as endpoints come and go.
    pub port_fill_budget: usize,
    /// TX ring size of every socket (bounds frames in flight per socket).
    pub tx_ring: usize,
    /// Control messages.
    pub commands: Receiver<Command<P>>,
    /// Group frames from the wire, one queue per network this worker
    /// floods for and its express queue (bounded; the sender counts overflow).
    pub floods: Vec<Receiver<GroupFrame>>,
    /// Where flooded frames' buffers go back to the group listener.
    pub recycle: crossbeam_channel::Sender<Vec<u8>>,
    /// How an idle worker waits.
    pub poll: Poll,
    /// Every endpoint's token bucket, shared by all workers.
    pub limits: Arc<Limiters>,
    /// Counters.
    pub stats: Arc<WorkerStats>,
    /// Reports to the control thread.
    pub events: crossbeam_channel::Sender<Event>,
    /// Membership reports, leaves and queries seen, for the snooping
    /// thread (bounded: a full channel counts the event dropped).
    pub snoops: crossbeam_channel::Sender<SnoopEvent>,
    /// The longest frame the worker carries as a chain of UMEM frames, if
    /// its sockets are bound with `XDP_USE_SG`; without, one UMEM frame.
    pub jumbo: Option<usize>,
}

/// Reports from a worker to the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An endpoint's device failed (its TAP is gone): remove the endpoint.
    PortDead(EndpointId),
}

/// The control thread's handle on a running worker.
pub struct WorkerHandle<P: Ports = Kernel> {
    /// Sends commands.
    pub commands: crossbeam_channel::Sender<Command<P>>,
    /// Wakes the worker from poll() after a command or a flood frame.
    pub wake: Arc<EventFd>,
    /// The thread.
    pub thread: std::thread::JoinHandle<()>,
}

/// A Linux eventfd used to wake a sleeping worker.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A non-blocking eventfd.
    pub fn new() -> std::io::Result<EventFd> {
        // SAFETY: plain eventfd(2) call; checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh fd that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes the waiter.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears pending wakes.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }

    /// The descriptor, for poll(2).
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

struct Port<P: Ports> {
    io: EndpointIo<P>,
    inflight: Inflight,
    /// Frames staged for this endpoint in the current iteration.
    staged: Vec<P::Desc>,
    /// TAP only: iterations left before the next read() (backoff after empty reads).
    read_skip: u32,
    /// TAP only: the current backoff, doubled after each empty read.
    read_backoff: u32,
    /// The endpoint has a rate limit (its bucket is in the shared [`Limiters`]).
    limited: bool,
    /// A multi-buffer frame its socket is handing over.
    chain: Chain,
}

/// The `XDP_PKT_CONTD` option bit: the frame goes on in the next descriptor.
pub const CONTD: u32 = 1;

/// A multi-buffer frame being gathered from its chain of descriptors.
#[derive(Debug, Default)]
struct Chain {
    /// The frame's bytes so far (at most the longest frame carried).
    buf: Vec<u8>,
    /// Bytes the chain held, those that did not fit `buf` included.
    len: usize,
    /// A chunk came that said more would follow.
    open: bool,
}

/// Whose chain a chunk belongs to.
#[derive(Debug, Clone, Copy)]
enum ChainOf {
    Wire,
    Punt,
    Port(usize),
}

/// Most iterations a TAP read is skipped after empty reads: an empty read()
/// is a syscall, and under load the TAPs are mostly quiet.
const TAP_READ_BACKOFF_MAX: u32 = 32;

/// A worker's state; runs on its own thread (or, over in-memory ports,
/// one [`Worker::step`] at a time in tests).
pub struct Worker<P: Ports = Kernel> {
    /// The UMEM's memory. Frame data is read through a clone of this handle
    /// while other frames are written through it: sound because a frame
    /// being read is never on the free list (it came off an RX ring or a
    /// queue and goes back only after), and only frames popped from the
    /// free list are written. `copy_chain` asserts the two never meet.
    umem: P::Mem,
    mtu: usize,
    pool: FramePool<P::Desc>,
    parent: P::Socket,
    parent_inflight: Inflight,
    /// The fast path's punt device, once it is set up.
    punt: Option<(P::Socket, Inflight)>,
    to_wire: Vec<P::Desc>,
    /// The sender of each frame in `to_wire` (same index), whose drop it is
    /// if the frame cannot leave.
    to_wire_from: Vec<EndpointId>,
    ports: Vec<Option<Port<P>>>,
    /// Ids of ports with staged frames.
    dirty: Vec<EndpointId>,
    rx_buf: Vec<P::Desc>,
    /// When the parent socket's ring statistics were last read.
    stats_read: Instant,
    /// Where the tail of a TAP frame longer than a UMEM frame goes, so that
    /// its length shows (and it is dropped, not forwarded cut short).
    tap_overflow: Vec<u8>,
    fdb: Arc<Fdb>,
    cfg_batch: usize,
    parent_fill: usize,
    punt_fill: usize,
    port_fill_budget: usize,
    /// What each receiving endpoint socket keeps posted now.
    port_fill: usize,
    tx_ring: usize,
    commands: Receiver<Command<P>>,
    floods: Vec<Receiver<GroupFrame>>,
    recycle: crossbeam_channel::Sender<Vec<u8>>,
    /// Group frames from the wire the fast path copied to the punt device,
    /// waiting in UMEM frames, one bounded queue per network.
    wire_floods: Vec<VecDeque<(P::Desc, Flood)>>,
    poll: Poll,
    /// Scratch list of flood targets, reused for every group frame.
    flood_scratch: Vec<EndpointId>,
    /// The flood queue served first on the next pass.
    flood_next: usize,
    /// Whether any port has a rate limit (the worker reads the clock only then).
    any_limits: bool,
    /// Every endpoint's token bucket, shared with the other workers.
    limits: Arc<Limiters>,
    /// Ring statistics of the endpoint sockets this worker closed.
    xsk_retired: XskStats,
    /// The last parent RX took a whole batch (more may be waiting).
    parent_rx_full: bool,
    stats: Arc<WorkerStats>,
    events: crossbeam_channel::Sender<Event>,
    /// The group table published last.
    groups: Arc<GroupTable>,
    snoops: crossbeam_channel::Sender<SnoopEvent>,
    wake: Arc<EventFd>,
    pollfds: Vec<libc::pollfd>,
    /// The longest frame carried as a chain (`None`: one UMEM frame).
    jumbo: Option<usize>,
    /// Multi-buffer frames arriving from the wire and the punt device.
    wire_chain: Chain,
    punt_chain: Chain,
    /// Jumbo frames read from a TAP in this batch, each with the number of
    /// frames read before it (its place among them).
    tap_jumbo: Vec<(usize, Vec<u8>)>,
    /// Buffers of handled jumbo TAP frames, for the next.
    tap_spare: Vec<Vec<u8>>,
    /// A chain staged for a TAP, gathered for its one write.
    tap_gather: Vec<u8>,
    /// The descriptors of a chain being copied out.
    chain_out: Vec<P::Desc>,
}

impl<P: Ports> Worker<P> {
    /// Starts a worker thread.
    pub fn spawn(
        cfg: WorkerConfig<P>,
        commands_tx: crossbeam_channel::Sender<Command<P>>,
    ) -> std::io::Result<WorkerHandle<P>> {
        let wake = Arc::new(EventFd::new()?);
        let queue = cfg.queue;
        let core = cfg.core;
        let stats = cfg.stats.clone();
        let mut worker = Worker::new(cfg, wake.clone());
        stats.alive.store(true, Relaxed);
        let thread = std::thread::Builder::new()
            .name(format!("mvdp-q{queue}"))
            .spawn(move || {
                // Marks the worker dead however the thread ends, unwinding included.
                struct Alive(Arc<WorkerStats>);
                impl Drop for Alive {
                    fn drop(&mut self) {
                        self.0.alive.store(false, Relaxed);
                    }
                }
                let _alive = Alive(stats);
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        log::warn!("worker q{queue}: could not pin to core {}", core.id);
                    }
                }
                worker.run();
            })?;
        Ok(WorkerHandle {
            commands: commands_tx,
            wake,
            thread,
        })
    }

    /// A worker on `cfg`'s ports, woken from poll() by `wake`.
    pub(super) fn new(cfg: WorkerConfig<P>, wake: Arc<EventFd>) -> Worker<P> {
        cfg.stats.has_socket.store(true, Relaxed);
        let batch = cfg.batch.max(1);
        Worker {
            umem: cfg.umem.mem,
            mtu: cfg.umem.mtu,
            pool: FramePool::new(cfg.umem.descs, cfg.umem.frame_size),
            parent: cfg.parent,
            parent_inflight: Inflight::default(),
            punt: None,
            to_wire: Vec::with_capacity(batch * 4),
            to_wire_from: Vec::with_capacity(batch * 4),
            ports: Vec::new(),
            dirty: Vec::new(),
            rx_buf: vec![P::Desc::default(); batch],
            tap_overflow: vec![0; TAP_OVERFLOW],
            stats_read: Instant::now(),
            fdb: cfg.fdb,
            cfg_batch: batch,
            parent_fill: cfg.parent_fill,
            punt_fill: cfg.punt_fill,
            port_fill_budget: cfg.port_fill_budget,
            port_fill: MAX_PORT_FILL,
            tx_ring: cfg.tx_ring,
            commands: cfg.commands,
            floods: cfg.floods,
            recycle: cfg.recycle,
            wire_floods: Vec::new(),
            poll: cfg.poll,
            flood_scratch: Vec::new(),
            flood_next: 0,
            any_limits: false,
            limits: cfg.limits,
            xsk_retired: XskStats::default(),
            parent_rx_full: false,
            stats: cfg.stats,
            events: cfg.events,
            groups: Arc::default(),
            snoops: cfg.snoops,
            wake,
            pollfds: Vec::new(),
            jumbo: cfg.jumbo,
            wire_chain: Chain::default(),
            punt_chain: Chain::default(),
            tap_jumbo: Vec::new(),
            tap_spare: Vec::new(),
            tap_gather: Vec::new(),
            chain_out: Vec::new(),
        }
    }

    /// Posts the first frames to the fill rings.
    pub(super) fn start(&mut self) {
        self.refill();
    }

    /// One pass: commands, then parent RX, endpoint RX, punt RX and the
    /// flood queues, one flush per destination, completion reaping and
    /// fill-ring refill. The work found (0: idle), or `None` on Stop.
    pub(super) fn step(&mut self) -> Option<usize> {
        if !self.handle_commands() {
            return None;
        }
        let mut work = self.parent_rx();
        work += self.endpoints_rx();
        work += self.punt_rx();
        work += self.flood_rx();
        self.note_free_frames();
        self.flush();
        work += self.reap();
        self.refill();
        Some(work)
    }

    fn run(&mut self) {
        self.start();
        let mut idle: u32 = 0;
        let mut busy: u32 = 0;
        // Test hook: `MVDP_TEST_WORKER_PANIC_MS=N` makes the worker panic N ms
        // after it starts, to exercise supervision. Read once; costs nothing unset.
        let panic_at = std::env::var("MVDP_TEST_WORKER_PANIC_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(|ms| std::time::Instant::now() + std::time::Duration::from_millis(ms));
        loop {
            if panic_at.is_some_and(|t| std::time::Instant::now() >= t) {
                panic!(
                    "worker for queue {}: MVDP_TEST_WORKER_PANIC_MS test hook",
                    self.stats.queue
                );
            }
            let Some(work) = self.step() else { break };
            if work > 0 {
                idle = 0;
                // Under a load that never lets it idle, now and then.
                busy = busy.wrapping_add(1);
                if busy % 4096 == 0 {
                    self.publish_gauges();
                }
                continue;
            }
            match self.poll {
                Poll::Interrupt => self.sleep(),
                // Never sleep: the next frame is seen as soon as it is on a
                // ring, with no wake-up to wait for. No syscall while idle.
                Poll::Busy => {
                    idle = idle.wrapping_add(1);
                    if idle % 4096 == 0 {
                        self.publish_gauges();
                    }
                    std::hint::spin_loop();
                }
            }
        }
        self.stats.has_socket.store(false, Relaxed);
    }

    /// Publishes the gauges an idle or a busy worker refreshes now and
    /// then: free UMEM frames, and (at most once every 250 ms) the parent
    /// socket's kernel ring statistics, read here, by the socket's owner.
    fn publish_gauges(&mut self) {
        self.stats
            .umem_free
            .store(self.pool.free.len() as u64, Relaxed);
        if self.stats_read.elapsed() >= std::time::Duration::from_millis(250) {
            self.stats_read = Instant::now();
            if let Ok(s) = self.parent.stats() {
                self.stats.xsk.store(&s);
            }
            if let Some(Ok(s)) = self.punt.as_ref().map(|(p, _)| p.stats()) {
                self.stats.xsk_punt.store(&s);
            }
            let mut sum = self.xsk_retired;
            for port in self.ports.iter().flatten() {
                if let EndpointIo::Xsk { socket, .. } = &port.io {
                    if let Ok(s) = socket.stats() {
                        sum.add(&s);
                    }
                }
            }
            self.stats.xsk_endpoints.store(&sum);
        }
    }

    /// Notes how few UMEM frames are free, for the low-water gauge: once a
    /// pass, after the pass's frames are staged and before any come back.
    #[inline]
    fn note_free_frames(&self) {
        let free = self.pool.free.len() as u64;
        if free < self.stats.umem_free_min.load(Relaxed) {
            self.stats.umem_free_min.store(free, Relaxed);
        }
    }

    /// Applies pending commands. False on Stop or when the control thread is gone.
    fn handle_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Fdb(fdb)) => {
                    self.fdb = fdb;
                    self.apply_limits();
                }
                Ok(Command::Groups(groups)) => self.groups = groups,
                Ok(Command::AddPort(id, io)) => {
                    // A slot still taken is let go of properly first.
                    self.remove_port(id);
                    let i = usize::from(id.0);
                    if self.ports.len() <= i {
                        self.ports.resize_with(i + 1, || None);
                    }
                    self.stats.reset_endpoint(id);
                    self.ports[i] = Some(Port {
                        io,
                        inflight: Inflight::default(),
                        staged: Vec::with_capacity(self.cfg_batch),
                        read_skip: 0,
                        read_backoff: 0,
                        limited: false,
                        chain: Chain::default(),
                    });
                    self.apply_limits();
                    self.rebuild_pollfds();
                }
                Ok(Command::RemovePort(id)) => {
                    self.remove_port(id);
                    self.rebuild_pollfds();
                }
                Ok(Command::AddFloodQueue(rx)) => self.floods.push(rx),
                Ok(Command::SetPunt(socket)) => {
                    if let Some((old, _)) = self.punt.take() {
                        drop(old);
                        self.pool.reclaim(PUNT);
                    }
                    self.punt = Some((socket, Inflight::default()));
                    // A chain the old socket was handing over ends with it.
                    self.punt_chain = Chain::default();
                    self.rebuild_pollfds();
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    /// Stops serving an endpoint, if it is served: frames staged for it are
    /// dropped, its socket closed and every frame posted to it taken back.
    fn remove_port(&mut self, id: EndpointId) {
        let Some(mut port) = self.ports.get_mut(usize::from(id.0)).and_then(Option::take) else {
            return;
        };
        for d in port.staged.drain(..) {
            // A flood copy is not a frame of its own: its frame
            // was counted when the copies were made. A chain is one frame.
            let ends = d.options() & CONTD == 0;
            if ends && d.options() & COPY_MARK != 0 {
                self.stats.flood_copy_dropped(id);
            } else if ends {
                self.stats.dropped_for(DropReason::EndpointGone, id);
            }
            self.pool.push(d);
        }
        // Its ring statistics stay in the endpoints' sums.
        if let EndpointIo::Xsk { socket, .. } = &port.io {
            if let Ok(s) = socket.stats() {
                self.xsk_retired.add(&s);
            }
        }
        // Close the socket first (the kernel unbinds it and waits for
        // in-flight RX), then take back every frame still posted to it.
        drop(port.io);
        let n = self.pool.reclaim(u32::from(id.0));
        log::debug!("endpoint {}: reclaimed {n} UMEM frames", id.0);
        self.dirty.retain(|d| *d != id);
    }

    /// Group frames waiting in the worker's own flood queues.
    pub(super) fn queued_group_frames(&self) -> usize {
        self.wire_floods.iter().map(VecDeque::len).sum()
    }

    /// Checks where every one of the UMEM's `frames` frames is: on the free
    /// list, held by the worker (staged or queued), or on the rings of one
    /// socket (`rings`: what the kernel's side of each socket holds). Each
    /// must be in exactly one place, and the pool's ledger must agree.
    pub(super) fn check_frames(
        &self,
        frames: usize,
        rings: &[(Holder, Vec<usize>)],
    ) -> Result<(), String> {
        let size = self.pool.frame_size();
        let mut place: Vec<Option<Place>> = vec![None; frames];
        let mut put = |addr: usize, here: Place| -> Result<(), String> {
            let idx = addr / size;
            let slot = place
                .get_mut(idx)
                .ok_or_else(|| format!("frame at {addr} is outside the UMEM ({here:?})"))?;
            if let Some(before) = slot.replace(here) {
                return Err(format!("frame {idx} is both {before:?} and {here:?}"));
            }
            Ok(())
        };
        for d in &self.pool.free {
            put(d.addr(), Place::Free)?;
        }
        for (id, port) in self.ports.iter().enumerate() {
            for d in port.iter().flat_map(|p| &p.staged) {
                put(d.addr(), Place::StagedFor(id))?;
            }
        }
        for d in &self.to_wire {
            put(d.addr(), Place::StagedForWire)?;
        }
        for (q, queue) in self.wire_floods.iter().enumerate() {
            for (d, _) in queue {
                put(d.addr(), Place::FloodQueue(q))?;
            }
        }
        for &(holder, ref addrs) in rings {
            for &a in addrs {
                put(a, Place::Rings(holder))?;
            }
        }
        // Every frame somewhere, and where the ledger says: a socket's
        // rings for the frames it holds, user space for the others.
        for (idx, here) in place.iter().enumerate() {
            let tag = match here {
                None => return Err(format!("frame {idx} is nowhere: lost")),
                Some(Place::Rings(holder)) => holder.tag(),
                Some(_) => USER,
            };
            let ledger = self.pool.holder(idx);
            if ledger != tag {
                return Err(format!(
                    "frame {idx} is {here:?}, but the ledger says holder {ledger}"
                ));
            }
        }
        Ok(())
    }

    /// Holds every port to the rate limit its FDB entry names, in the
    /// bucket all workers share (kept where the limit did not change).
    fn apply_limits(&mut self) {
        let fdb = self.fdb.clone();
        for (i, port) in self.ports.iter_mut().enumerate() {
            let Some(port) = port else { continue };
            let id = EndpointId(i as u16);
            let limit = fdb.endpoint(id).and_then(|e| e.rate_limit);
            self.limits.set(id, limit);
            port.limited = limit.is_some();
        }
        self.any_limits = self.ports.iter().flatten().any(|p| p.limited);
    }

    fn rebuild_pollfds(&mut self) {
        let mut fds = vec![self.wake.fd(), self.parent.fd()];
        if let Some((punt, _)) = &self.punt {
            fds.push(punt.fd());
        }
        let mut receiving = 0;
        for port in self.ports.iter().flatten() {
            match &port.io {
                EndpointIo::Xsk {
                    socket,
                    receives: true,
                } => {
                    fds.push(socket.fd());
                    receiving += 1;
                }
                EndpointIo::Xsk { .. } => {}
                EndpointIo::Tap { port, read: true } => fds.push(port.fd()),
                EndpointIo::Tap { .. } => {}
            }
        }
        // Frames already posted above a smaller share stay until the kernel
        // uses them (a fill ring cannot be taken back): endpoints added one
        // by one overcommit the budget by a factor of ln(n) at worst, where
        // a share fixed at start would by n.
        self.port_fill =
            (self.port_fill_budget / receiving.max(1)).clamp(MIN_PORT_FILL, MAX_PORT_FILL);
        self.pollfds = fds
            .into_iter()
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
    }

    /// Stops reading an endpoint whose device has gone and tells the control thread.
    fn port_dead(&mut self, id: EndpointId) {
        if let Some(Some(Port {
            io: EndpointIo::Tap { read, .. },
            ..
        })) = self.ports.get_mut(usize::from(id.0))
        {
            *read = false;
        }
        let _ = self.events.send(Event::PortDead(id));
        self.rebuild_pollfds();
    }

    /// Sleeps in poll(2) until a socket, a TAP or the eventfd (commands,
    /// group frames) has work. Never while a fill ring is short of frames
    /// that only a TX completion can give back: no completion wakes poll(),
    /// so the frames would wait on a timer. (Copy mode completes a kick's
    /// frames on the way out of the syscall, so the next pass finds them.)
    fn sleep(&mut self) {
        if self.pollfds.is_empty() {
            self.rebuild_pollfds();
        }
        let tx_pending =
            self.parent_inflight.tx > 0 || self.ports.iter().flatten().any(|p| p.inflight.tx > 0);
        if tx_pending && self.pool.free.len() < self.cfg_batch {
            std::thread::yield_now();
            return;
        }
        // The timeout only refreshes the idle gauges; no frame waits on it.
        let timeout = 500;
        bump(&self.stats.sleeps, 1);
        self.publish_gauges();
        // SAFETY: `pollfds` is a valid array of pollfd of the given length.
        let ready = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                timeout,
            )
        };
        // pollfds[0] is the eventfd: read it only when it fired (one syscall less per wake).
        if ready != 0 && self.pollfds[0].revents != 0 {
            self.wake.drain();
        }
        self.woken();
    }

    /// After poll(): something may be readable, so every TAP is read on
    /// the next pass, whatever its backoff.
    pub(super) fn woken(&mut self) {
        for port in self.ports.iter_mut().flatten() {
            port.read_skip = 0;
        }
    }

    /// Frames from the wire for endpoints (the XDP program redirected them).
    fn parent_rx(&mut self) -> usize {
        let batch = self.cfg_batch;
        // SAFETY: rx_buf holds `batch` descriptors to be overwritten; the frames
        // returned belong to this worker's UMEM, which every socket here shares.
        let n = unsafe { self.parent.rx(&mut self.rx_buf[..batch]) };
        self.parent_rx_full = n == batch;
        if n == 0 {
            return 0;
        }
        self.parent_inflight.fill -= n;
        self.pool.received(&self.rx_buf[..n]);
        self.stats
            .received(Source::Wire, self.frames_in(&self.rx_buf[..n]) as u64);
        self.stats.batch(n);
        // A handle of our own (one refcount per batch) so frame data can be read
        // while the worker's other fields change.
        let umem = self.umem.clone();
        for i in 0..n {
            let d = self.rx_buf[i];
            if d.options() & CONTD != 0 || self.wire_chain.open {
                if let Some(frame) = self.gather(ChainOf::Wire, d) {
                    self.wire_jumbo(&frame, false);
                    self.chain_done(ChainOf::Wire, frame);
                }
                continue;
            }
            // SAFETY: `d` came off our RX ring, so user space owns the frame until we post it again.
            let data = unsafe { umem.data(&d) };
            match classify_ingress(&self.fdb, data) {
                Verdict::Endpoint(id) => self.stage(id, d),
                Verdict::EndpointUntag(id) => {
                    let d = self.untag(d);
                    self.stage(id, d);
                }
                Verdict::Flood(flood) => {
                    // A group frame a private/passthru/source endpoint sent,
                    // reflected by the wire: back to its sender.
                    let copies = self.flood_copies(&flood, data);
                    self.count_flood(&flood, copies);
                    self.pool.push(d);
                }
                Verdict::Wire { .. } => {
                    // Not produced for wire ingress; never reflect a frame back.
                    self.stats.dropped(DropReason::Internal);
                    self.pool.push(d);
                }
                Verdict::Drop(r) => {
                    self.ingress_dropped(data, r);
                    self.pool.push(d);
                }
            }
        }
        n
    }

    /// Counts a frame from the wire that classify_ingress dropped, for the
    /// endpoint it was addressed to where the drop was for that one's sake.
    fn ingress_dropped(&self, data: &[u8], reason: DropReason) {
        match ingress_drop_endpoint(&self.fdb, data, reason) {
            Some(to) => self.stats.dropped_for(reason, to),
            None => self.stats.dropped(reason),
        }
    }

    /// Frames the containers sent.
    fn endpoints_rx(&mut self) -> usize {
        let mut work = 0;
        // One clock read per pass, and only when some endpoint is rate limited.
        let now = self.any_limits.then(Instant::now);
        for i in 0..self.ports.len() {
            let id = EndpointId(i as u16);
            let Some(port) = self.ports[i].as_mut() else {
                continue;
            };
            let n = match &mut port.io {
                EndpointIo::Xsk {
                    socket,
                    receives: true,
                } => {
                    // SAFETY: as in parent_rx: descriptors of our own UMEM, ours until reposted.
                    let n = unsafe { socket.rx(&mut self.rx_buf[..self.cfg_batch]) };
                    port.inflight.fill -= n;
                    self.pool.received(&self.rx_buf[..n]);
                    n
                }
                EndpointIo::Xsk { .. } => 0,
                EndpointIo::Tap {
                    port: tap,
                    read: true,
                } => {
                    if port.read_skip > 0 {
                        port.read_skip -= 1;
                        continue;
                    }
                    let tap = tap.clone();
                    match self.tap_read(&tap, id) {
                        Ok(n) => {
                            let read = n + self.tap_jumbo.len();
                            if let Some(port) = self.ports[i].as_mut() {
                                port.read_backoff = if read == 0 {
                                    (port.read_backoff * 2).clamp(1, TAP_READ_BACKOFF_MAX)
                                } else {
                                    0
                                };
                                port.read_skip = port.read_backoff;
                            }
                            n
                        }
                        Err(_) => {
                            self.port_dead(id);
                            0
                        }
                    }
                }
                EndpointIo::Tap { .. } => 0,
            };
            let jumbos = self.tap_jumbo.len();
            if n == 0 && jumbos == 0 {
                continue;
            }
            work += n + jumbos;
            let frames = self.frames_in(&self.rx_buf[..n]) + jumbos;
            self.stats.received(Source::Endpoint, frames as u64);
            self.stats.batch(n);
            // The endpoint's bucket is locked once for the batch, and only
            // if it has one.
            let limits = self.limits.clone();
            let limited = self.ports[i].as_ref().is_some_and(|p| p.limited);
            let mut slot = limited.then(|| limits.lock(id)).flatten();
            let mut bucket = slot.as_deref_mut().and_then(Option::as_mut);
            if let (Some(now), Some(b)) = (now, bucket.as_deref_mut()) {
                b.refill(now);
            }
            let umem = self.umem.clone();
            let mut jumbo = std::mem::take(&mut self.tap_jumbo);
            let mut next = jumbo.drain(..).peekable();
            for k in 0..=n {
                // A TAP's jumbo frames in their place among its others.
                while let Some((_, frame)) = next.next_if(|(at, _)| *at == k) {
                    self.egress_jumbo(id, &frame, bucket.as_deref_mut());
                    self.tap_spare.push(frame);
                }
                if k == n {
                    break;
                }
                let d = self.rx_buf[k];
                let open = self.ports[i].as_ref().is_some_and(|p| p.chain.open);
                if d.options() & CONTD != 0 || open {
                    if let Some(frame) = self.gather(ChainOf::Port(i), d) {
                        self.egress_jumbo(id, &frame, bucket.as_deref_mut());
                        self.chain_done(ChainOf::Port(i), frame);
                    }
                    continue;
                }
                self.egress(&umem, id, d, bucket.as_deref_mut());
            }
            drop(next);
            self.tap_jumbo = jumbo;
        }
        work
    }

    /// Frames the fast path handed over (bpf/fastpath.c's punt): each under
    /// an 802.1ad tag whose VID is its sender's endpoint id, or marked as a
    /// copy of a group frame from the wire. The tag comes off, and the frame
    /// is the sender's egress like any other, or queued for flooding.
    fn punt_rx(&mut self) -> usize {
        let Some((punt, inflight)) = self.punt.as_mut() else {
            return 0;
        };
        // SAFETY: as in parent_rx: descriptors of our own UMEM, ours until reposted.
        let n = unsafe { punt.rx(&mut self.rx_buf[..self.cfg_batch]) };
        if n == 0 {
            return 0;
        }
        inflight.fill -= n;
        self.pool.received(&self.rx_buf[..n]);
        self.stats.batch(n);
        let now = self.any_limits.then(Instant::now);
        let umem = self.umem.clone();
        for k in 0..n {
            let d = self.rx_buf[k];
            if d.options() & CONTD != 0 || self.punt_chain.open {
                if let Some(frame) = self.gather(ChainOf::Punt, d) {
                    self.punt_jumbo(frame, now);
                }
                continue;
            }
            // SAFETY: the frame is ours (just consumed).
            let data = unsafe { umem.data(&d) };
            let id = match punt_tag(data) {
                Some(PuntTag::Wire) => {
                    let d = self.untag(d);
                    self.wire_group(&umem, d);
                    continue;
                }
                Some(PuntTag::Endpoint(id)) => id,
                None => {
                    // Not from the fast path's punt: nothing else sends there.
                    self.stats.received(Source::Endpoint, 1);
                    self.stats.dropped(DropReason::Malformed);
                    self.pool.push(d);
                    continue;
                }
            };
            self.stats.received(Source::Endpoint, 1);
            let d = self.untag(d);
            self.with_bucket(id, now, |w, bucket| w.egress(&umem, id, d, bucket));
        }
        n
    }

    /// Runs `f` with endpoint `id`'s token bucket (refilled to `now`), if
    /// it has one, locked meanwhile.
    fn with_bucket<R>(
        &mut self,
        id: EndpointId,
        now: Option<Instant>,
        f: impl FnOnce(&mut Self, Option<&mut TokenBucket>) -> R,
    ) -> R {
        let limited = self
            .ports
            .get(usize::from(id.0))
            .and_then(Option::as_ref)
            .is_some_and(|p| p.limited);
        let limits = self.limits.clone();
        let mut slot = limited.then(|| limits.lock(id)).flatten();
        let mut bucket = slot.as_deref_mut().and_then(Option::as_mut);
        if let (Some(now), Some(b)) = (now, bucket.as_deref_mut()) {
            b.refill(now);
        }
        f(self, bucket)
    }

    /// A group frame from the wire, copied by the fast path: classified
    /// and queued on its network's bounded queue (the kernel macvlan's
    /// broadcast queue; overflow is `flood_queue_full`), or, with a single
    /// receiver, delivered as it is, costing what a unicast frame does.
    fn wire_group(&mut self, umem: &P::Mem, d: P::Desc) {
        self.stats.received(Source::WireGroup, 1);
        // SAFETY: the frame is ours (just consumed).
        let data = unsafe { umem.data(&d) };
        if let Some(net) = snoop_query(&self.fdb, data) {
            send_snoop(&self.snoops, &self.stats, SnoopEvent::Query(net));
        }
        match classify_ingress(&self.fdb, data) {
            Verdict::Flood(flood) => {
                let mut receivers = 0;
                let mut only = None;
                flood_targets(&self.fdb, &self.groups, &flood, |id| {
                    receivers += 1;
                    only = Some(id);
                });
                match (receivers, only) {
                    (1, Some(to)) => {
                        let d = if flood.untag { self.untag(d) } else { d };
                        self.stage(to, d);
                    }
                    _ => {
                        let q = usize::from(flood.network.0);
                        let cap = self.fdb.network(flood.network).flood_queue_len.max(1);
                        if q >= self.wire_floods.len() {
                            self.wire_floods.resize_with(q + 1, VecDeque::new);
                        }
                        if self.wire_floods[q].len() >= cap {
                            self.stats.dropped(DropReason::FloodQueueFull);
                            self.pool.push(d);
                        } else {
                            self.wire_floods[q].push_back((d, flood));
                        }
                    }
                }
            }
            // A passthru network's endpoint takes group frames whole.
            Verdict::Endpoint(to) => self.stage(to, d),
            Verdict::EndpointUntag(to) => {
                let d = self.untag(d);
                self.stage(to, d);
            }
            Verdict::Drop(r) => {
                self.ingress_dropped(data, r);
                self.pool.push(d);
            }
            Verdict::Wire { .. } => {
                // Not produced for wire ingress.
                self.stats.dropped(DropReason::Internal);
                self.pool.push(d);
            }
        }
    }

    /// One frame endpoint `id` sent (counted as received by the caller):
    /// counted for the endpoint, held to its rate limit, classified, staged.
    #[inline]
    fn egress(
        &mut self,
        umem: &P::Mem,
        id: EndpointId,
        d: P::Desc,
        bucket: Option<&mut TokenBucket>,
    ) {
        // SAFETY: the frame is ours (just consumed or just read into).
        let data = unsafe { umem.data(&d) };
        let Some(verdict) = self.admit(id, data, bucket) else {
            self.pool.push(d);
            return;
        };
        match verdict {
            Verdict::Endpoint(to) => self.stage(to, d),
            Verdict::EndpointUntag(to) => {
                let d = self.untag(d);
                self.stage(to, d);
            }
            Verdict::Wire { tag } => self.send_to_wire(id, d, tag),
            Verdict::Flood(flood) => {
                let copies = self.flood_copies(&flood, data);
                if flood.wire {
                    // Accounted when it leaves for the wire.
                    let tag = self.fdb.network(flood.network).vlan;
                    self.send_to_wire(id, d, tag);
                } else {
                    self.count_flood(&flood, copies);
                    self.pool.push(d);
                }
            }
            // Spoofed, VLAN hop, malformed, or a sender no longer in the FDB.
            Verdict::Drop(r) => {
                self.stats.dropped_for(r, id);
                self.pool.push(d);
            }
        }
    }

    /// Where a frame endpoint `id` sent goes: counted for the endpoint,
    /// held to its rate limit (`None`: dropped for it), classified, and
    /// what it says about its groups snooped if it passes.
    #[inline]
    fn admit(
        &mut self,
        id: EndpointId,
        data: &[u8],
        bucket: Option<&mut TokenBucket>,
    ) -> Option<Verdict> {
        let counters = &self.stats.endpoints[usize::from(id.0)];
        bump(&counters.rx_packets, 1);
        bump(&counters.rx_bytes, data.len() as u64);
        if bucket.is_some_and(|b| !b.take(data.len() as u64)) {
            self.stats.dropped_for(DropReason::RateLimited, id);
            return None;
        }
        let verdict = classify_egress(&self.fdb, id, data);
        // What a container says about its groups counts only if its frame
        // passes (not spoofed, not a VLAN hop).
        let passes = !matches!(verdict, Verdict::Drop(_));
        if passes && data.first().is_some_and(|b| b & 1 != 0) {
            if let Some(changes) = snoop_egress(&self.fdb, id, data) {
                for m in changes {
                    let e = if m.join {
                        SnoopEvent::Join(id, m.group)
                    } else {
                        SnoopEvent::Leave(id, m.group)
                    };
                    send_snoop(&self.snoops, &self.stats, e);
                }
            }
        }
        Some(verdict)
    }

    /// How many of `descs` end a frame: all of them, but for chunks of
    /// multi-buffer frames (only a worker bound for them looks).
    #[inline]
    fn frames_in(&self, descs: &[P::Desc]) -> usize {
        match self.jumbo {
            None => descs.len(),
            Some(_) => descs.iter().filter(|d| d.options() & CONTD == 0).count(),
        }
    }

    fn chain_mut(&mut self, of: ChainOf) -> &mut Chain {
        match of {
            ChainOf::Wire => &mut self.wire_chain,
            ChainOf::Punt => &mut self.punt_chain,
            ChainOf::Port(i) => match self.ports[i].as_mut() {
                Some(port) => &mut port.chain,
                // A port is removed between passes, never while it reads.
                None => unreachable!("a chain of endpoint slot {i}, which is empty"),
            },
        }
    }

    /// Takes chunk `d` of a multi-buffer frame (its frame goes back to the
    /// pool); the whole frame once `d` is its last chunk. A chain longer
    /// than the longest frame carried is dropped here as `too_long`, for
    /// the sender when it is an endpoint.
    #[cold]
    fn gather(&mut self, of: ChainOf, d: P::Desc) -> Option<Vec<u8>> {
        let max = self.jumbo.unwrap_or(self.mtu);
        let umem = self.umem.clone();
        // SAFETY: `d` came off an RX ring of ours: user space holds it.
        let data = unsafe { umem.data(&d) };
        let last = d.options() & CONTD == 0;
        let chain = self.chain_mut(of);
        chain.len += data.len();
        if chain.len <= max {
            chain.buf.extend_from_slice(data);
        }
        chain.open = !last;
        self.pool.push(d);
        if !last {
            return None;
        }
        let chain = self.chain_mut(of);
        let len = std::mem::take(&mut chain.len);
        let frame = std::mem::take(&mut chain.buf);
        if len <= max {
            return Some(frame);
        }
        match of {
            ChainOf::Port(i) => {
                let id = EndpointId(i as u16);
                let counters = &self.stats.endpoints[i];
                bump(&counters.rx_packets, 1);
                bump(&counters.rx_bytes, len as u64);
                self.stats.dropped_for(DropReason::TooLong, id);
            }
            // Counted as received where a punted frame is: here, as its
            // punt tag says.
            ChainOf::Punt => match punt_tag(&frame) {
                Some(PuntTag::Wire) => {
                    self.stats.received(Source::WireGroup, 1);
                    self.stats.dropped(DropReason::TooLong);
                }
                Some(PuntTag::Endpoint(id)) if usize::from(id.0) < self.stats.endpoints.len() => {
                    self.stats.received(Source::Endpoint, 1);
                    let counters = &self.stats.endpoints[usize::from(id.0)];
                    bump(&counters.rx_packets, 1);
                    bump(&counters.rx_bytes, len as u64);
                    self.stats.dropped_for(DropReason::TooLong, id);
                }
                _ => {
                    self.stats.received(Source::Endpoint, 1);
                    self.stats.dropped(DropReason::TooLong);
                }
            },
            ChainOf::Wire => self.stats.dropped(DropReason::TooLong),
        }
        self.chain_done(of, frame);
        None
    }

    /// Gives a gathered frame's buffer back to its chain, for the next.
    fn chain_done(&mut self, of: ChainOf, mut frame: Vec<u8>) {
        frame.clear();
        if let ChainOf::Port(i) = of {
            if self.ports[i].is_none() {
                return;
            }
        }
        self.chain_mut(of).buf = frame;
    }

    /// A gathered frame from the wire (`group`: a group frame the fast
    /// path copied, already counted as received): classified and copied
    /// to where it goes.
    #[cold]
    fn wire_jumbo(&mut self, data: &[u8], group: bool) {
        if group {
            if let Some(net) = snoop_query(&self.fdb, data) {
                send_snoop(&self.snoops, &self.stats, SnoopEvent::Query(net));
            }
        }
        match classify_ingress(&self.fdb, data) {
            Verdict::Endpoint(to) => self.copy_to(to, data, false),
            Verdict::EndpointUntag(to) => self.copy_to(to, data, true),
            Verdict::Flood(flood) => {
                let copies = self.flood_copies(&flood, data);
                self.count_flood(&flood, copies);
            }
            Verdict::Drop(r) => self.ingress_dropped(data, r),
            // Not produced for wire ingress; never reflect a frame back.
            Verdict::Wire { .. } => self.stats.dropped(DropReason::Internal),
        }
    }

    /// A gathered frame endpoint `id` sent (counted as received by the
    /// caller): as [`Self::egress`] does, with copies out.
    #[cold]
    fn egress_jumbo(&mut self, id: EndpointId, data: &[u8], bucket: Option<&mut TokenBucket>) {
        let Some(verdict) = self.admit(id, data, bucket) else {
            return;
        };
        match verdict {
            Verdict::Endpoint(to) => self.copy_to(to, data, false),
            Verdict::EndpointUntag(to) => self.copy_to(to, data, true),
            Verdict::Wire { tag } => self.copy_to_wire(id, data, tag),
            Verdict::Flood(flood) => {
                let copies = self.flood_copies(&flood, data);
                if flood.wire {
                    let tag = self.fdb.network(flood.network).vlan;
                    self.copy_to_wire(id, data, tag);
                } else {
                    self.count_flood(&flood, copies);
                }
            }
            Verdict::Drop(r) => self.stats.dropped_for(r, id),
        }
    }

    /// A gathered frame from the punt device: its punt tag comes off, and
    /// it is a group frame from the wire or its sender's egress.
    #[cold]
    fn punt_jumbo(&mut self, mut frame: Vec<u8>, now: Option<Instant>) {
        let tag = punt_tag(&frame);
        if tag.is_some() {
            frame.drain(MACS_LEN..MACS_LEN + VLAN_TAG_LEN);
        }
        match tag {
            Some(PuntTag::Wire) => {
                self.stats.received(Source::WireGroup, 1);
                self.wire_jumbo(&frame, true);
            }
            Some(PuntTag::Endpoint(id)) => {
                self.stats.received(Source::Endpoint, 1);
                self.with_bucket(id, now, |w, bucket| w.egress_jumbo(id, &frame, bucket));
            }
            None => {
                self.stats.received(Source::Endpoint, 1);
                self.stats.dropped(DropReason::Malformed);
            }
        }
        self.chain_done(ChainOf::Punt, frame);
    }

    /// Copies `data` (less `cut` bytes of outer tag after the MACs, plus
    /// an 802.1Q tag `tag` there) into free frames, in `chain_out`: one
    /// frame, or a chain of them for a frame longer than one holds, each
    /// full but the last, each but the last marked [`CONTD`]. Why not, if
    /// not: too long for the worker, no free frames.
    fn copy_chain(&mut self, data: &[u8], cut: usize, tag: Option<u16>) -> Result<(), DropReason> {
        if data.len() < MACS_LEN + cut {
            return Err(DropReason::Malformed);
        }
        let mut tag_bytes = [0u8; VLAN_TAG_LEN];
        let tag_len = match tag {
            Some(vid) => {
                tag_bytes[..2].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
                tag_bytes[2..].copy_from_slice(&vid.to_be_bytes());
                VLAN_TAG_LEN
            }
            None => 0,
        };
        let pieces = [
            &data[..MACS_LEN],
            &tag_bytes[..tag_len],
            &data[MACS_LEN + cut..],
        ];
        let total: usize = pieces.iter().map(|p| p.len()).sum();
        if total > self.jumbo.unwrap_or(self.mtu) {
            return Err(DropReason::TooLong);
        }
        let count = total.div_ceil(self.mtu).max(1);
        if self.pool.free.len() < count {
            self.stats.umem_exhausted();
            return Err(DropReason::UmemExhausted);
        }
        self.chain_out.clear();
        let (mut piece, mut at) = (0, 0);
        for k in 0..count {
            let Some(mut d) = self.pool.pop() else {
                unreachable!("{count} frames were free");
            };
            let mtu = self.mtu;
            // SAFETY: `d` is a free frame owned by user space; `data` is
            // never on the free list (a gathered buffer, a listener's copy,
            // or a frame the worker holds).
            unsafe {
                self.umem.edit(&mut d, |buf, len| {
                    debug_assert!(
                        {
                            let dst = buf.as_ptr_range();
                            let src = data.as_ptr_range();
                            src.end <= dst.start || dst.end <= src.start
                        },
                        "a frame would be copied onto itself"
                    );
                    let cap = buf.len().min(mtu);
                    let mut w = 0;
                    while w < cap && piece < pieces.len() {
                        let src = &pieces[piece][at..];
                        let m = src.len().min(cap - w);
                        buf[w..w + m].copy_from_slice(&src[..m]);
                        w += m;
                        at += m;
                        if at == pieces[piece].len() {
                            piece += 1;
                            at = 0;
                        }
                    }
                    *len = w;
                })
            };
            d.set_options(if k + 1 < count { CONTD } else { 0 });
            self.chain_out.push(d);
        }
        Ok(())
    }

    /// Stages what `chain_out` holds for `to` (`copy`: a flood copy, not
    /// a frame of its own, marked so the flush does not count it). False,
    /// its frames freed, if `to` has no port; the caller counts the drop.
    fn stage_chain(&mut self, to: EndpointId, copy: bool) -> bool {
        let mut chain = std::mem::take(&mut self.chain_out);
        let staged = match self
            .ports
            .get_mut(usize::from(to.0))
            .and_then(Option::as_mut)
        {
            Some(port) => {
                if port.staged.is_empty() {
                    self.dirty.push(to);
                }
                let mark = if copy { COPY_MARK } else { 0 };
                port.staged.extend(chain.drain(..).map(|mut d| {
                    d.set_options(d.options() | mark);
                    d
                }));
                true
            }
            None => {
                for d in chain.drain(..) {
                    self.pool.push(d);
                }
                false
            }
        };
        self.chain_out = chain;
        staged
    }

    /// Queues a copy of `data`, a frame endpoint `from` sent, for the
    /// wire, under an 802.1Q tag if `tag` is set.
    fn copy_to_wire(&mut self, from: EndpointId, data: &[u8], tag: Option<u16>) {
        match self.copy_chain(data, 0, tag) {
            Ok(()) => {
                for &d in &self.chain_out {
                    self.to_wire.push(d);
                    self.to_wire_from.push(from);
                }
                self.chain_out.clear();
            }
            Err(reason) => self.stats.dropped_for(reason, from),
        }
    }

    /// Removes a frame's outer 802.1Q tag in place (the payload moves up 4 bytes).
    #[inline]
    fn untag(&mut self, mut d: P::Desc) -> P::Desc {
        // SAFETY: `d` is a frame user space owns (just received), not on any ring.
        unsafe {
            self.umem.edit(&mut d, |buf, len| {
                // Classification found the tag, so the frame holds it.
                if *len >= MACS_LEN + VLAN_TAG_LEN {
                    buf.copy_within(MACS_LEN + VLAN_TAG_LEN..*len, MACS_LEN);
                    // The 12 MAC bytes stay; the tag's 4 bytes are gone.
                    *len -= VLAN_TAG_LEN;
                }
            })
        };
        d
    }

    /// Queues a frame endpoint `from` sent for the wire, pushing an 802.1Q
    /// tag first if `tag` is set.
    #[inline]
    fn send_to_wire(&mut self, from: EndpointId, mut d: P::Desc, tag: Option<u16>) {
        if let Some(vid) = tag {
            // SAFETY: `d` is a frame user space owns (just received), not on any ring.
            let tagged = unsafe {
                self.umem.edit(&mut d, |buf, len| {
                    let old = *len;
                    if old < MACS_LEN {
                        return Err(DropReason::Malformed);
                    }
                    if old + VLAN_TAG_LEN > buf.len() {
                        return Err(DropReason::TooLong);
                    }
                    buf.copy_within(MACS_LEN..old, MACS_LEN + VLAN_TAG_LEN);
                    buf[MACS_LEN..MACS_LEN + 2].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
                    buf[MACS_LEN + 2..MACS_LEN + VLAN_TAG_LEN].copy_from_slice(&vid.to_be_bytes());
                    *len = old + VLAN_TAG_LEN;
                    Ok(())
                })
            };
            match tagged {
                Ok(()) => {}
                Err(DropReason::TooLong) if self.jumbo.is_some() => {
                    // With the tag it needs two frames: the jumbo lane.
                    let umem = self.umem.clone();
                    // SAFETY: `d` is ours, and copied from before it is freed.
                    self.copy_to_wire(from, unsafe { umem.data(&d) }, tag);
                    self.pool.push(d);
                    return;
                }
                Err(reason) => {
                    self.stats.dropped_for(reason, from);
                    self.pool.push(d);
                    return;
                }
            }
        }
        self.to_wire.push(d);
        self.to_wire_from.push(from);
    }

    /// Reads up to a batch of frames from a TAP into free frames (placed in
    /// rx_buf). `Err` when the device is gone (the caller stops reading it).
    fn tap_read(&mut self, tap: &P::Tap, id: EndpointId) -> Result<usize, std::io::Error> {
        let mut n = 0;
        // Frames the parent's (and the punt device's) fill rings lack stay
        // free, and a batch more while the wire is busy (its RX ring may
        // hold more frames not yet taken, each a fill entry short): a
        // container's burst must not leave the wire, and every other
        // container, without buffers.
        let wire_busy = if self.parent_rx_full {
            self.cfg_batch
        } else {
            0
        };
        let reserve = self.parent_fill.saturating_sub(self.parent_inflight.fill)
            + wire_busy
            + self
                .punt
                .as_ref()
                .map_or(0, |(_, i)| self.punt_fill.saturating_sub(i.fill));
        while n + self.tap_jumbo.len() < self.cfg_batch {
            let Some(mut d) = (self.pool.free.len() > reserve)
                .then(|| self.pool.pop())
                .flatten()
            else {
                // Frames the container queued stay in the TAP until frames come back.
                self.stats.umem_exhausted();
                break;
            };
            let overflow = &mut self.tap_overflow;
            // SAFETY: `d` is a free frame owned by user space.
            let (read, cap) = unsafe {
                self.umem.edit(&mut d, |buf, len| {
                    let read = tap.read(buf, overflow);
                    if let Ok(Some(n)) = read {
                        *len = n.min(buf.len());
                    }
                    (read, buf.len())
                })
            };
            match read {
                Ok(Some(len)) if len <= cap => {
                    self.rx_buf[n] = d;
                    n += 1;
                }
                Ok(Some(len)) if self.jumbo.is_some_and(|max| len <= max) => {
                    // A jumbo frame, in the frame and the overflow buffer:
                    // gathered, and handled in its place after the frames
                    // read before it.
                    let mut frame = self.tap_spare.pop().unwrap_or_default();
                    frame.clear();
                    // SAFETY: `d` is ours (just read into).
                    frame.extend_from_slice(unsafe { self.umem.data(&d) });
                    frame.extend_from_slice(&self.tap_overflow[..len - cap]);
                    self.tap_jumbo.push((n, frame));
                    self.pool.push(d);
                }
                Ok(Some(len)) => {
                    // Longer than a UMEM frame (its tail went to the overflow
                    // buffer): never forwarded cut short.
                    self.stats.received(Source::Endpoint, 1);
                    let counters = &self.stats.endpoints[usize::from(id.0)];
                    bump(&counters.rx_packets, 1);
                    bump(&counters.rx_bytes, len as u64);
                    self.stats.dropped_for(DropReason::TooLong, id);
                    self.pool.push(d);
                }
                Ok(None) => {
                    self.pool.push(d);
                    break;
                }
                Err(e) => {
                    self.pool.push(d);
                    log::warn!(
                        "endpoint {}: TAP read failed ({e}); no longer reading it",
                        id.0
                    );
                    return Err(e);
                }
            }
        }
        Ok(n)
    }

    /// Group frames from the wire waiting to be flooded: copied by the fast
    /// path, or by the group listener.
    fn flood_rx(&mut self) -> usize {
        self.wire_flood_rx() + self.listener_flood_rx()
    }

    /// Group frames the fast path copied, each network's queue in turn, its
    /// share of a batch at most, the first queue served rotating.
    fn wire_flood_rx(&mut self) -> usize {
        let queues = self.wire_floods.len();
        if queues == 0 {
            return 0;
        }
        let share = (self.cfg_batch / queues).max(1);
        self.flood_next = (self.flood_next + 1) % queues.max(1);
        let umem = self.umem.clone();
        let mut n = 0;
        for k in 0..queues {
            let q = (self.flood_next + k) % queues;
            for _ in 0..share {
                let Some((d, flood)) = self.wire_floods[q].pop_front() else {
                    break;
                };
                n += 1;
                // SAFETY: the frame is ours (queued since it was consumed).
                let data = unsafe { umem.data(&d) };
                let copies = self.flood_copies(&flood, data);
                self.count_flood(&flood, copies);
                self.pool.push(d);
            }
        }
        n
    }

    /// Group frames the group listener copied and classified.
    fn listener_flood_rx(&mut self) -> usize {
        let queues = self.floods.len();
        if queues == 0 {
            return 0;
        }
        // Each queue gets its share of the batch, and the first queue served
        // rotates, so one network's storm cannot starve another's ARP.
        let share = (self.cfg_batch / queues).max(1);
        self.flood_next = (self.flood_next + 1) % queues;
        let mut n = 0;
        for k in 0..queues {
            let q = (self.flood_next + k) % queues;
            for _ in 0..share {
                let Ok(GroupFrame { verdict, buf }) = self.floods[q].try_recv() else {
                    break;
                };
                // Counted as received by the group listener, which owns the queue's input side.
                n += 1;
                match verdict {
                    Verdict::Flood(flood) => {
                        let copies = self.flood_copies(&flood, &buf);
                        self.count_flood(&flood, copies);
                    }
                    // A passthru network's endpoint takes group frames whole.
                    Verdict::Endpoint(to) => self.copy_to(to, &buf, false),
                    Verdict::EndpointUntag(to) => self.copy_to(to, &buf, true),
                    // The listener queues floods and single receivers only.
                    Verdict::Drop(r) => self.stats.dropped(r),
                    Verdict::Wire { .. } => self.stats.dropped(DropReason::Internal),
                }
                // Back to the listener; if its pool is full, freed here.
                let _ = self.recycle.try_send(buf);
            }
        }
        n
    }

    /// Accounts a group frame by its copies: delivered if it reached anyone.
    /// A frame none of whose copies could be made or staged is dropped for
    /// the reason its copies were (no free frame, too long, a gone port);
    /// with no one to copy it to, as `no_endpoint` (`no_group_member` for
    /// a snooped group).
    fn count_flood(&mut self, flood: &Flood, copies: Copies) {
        if copies.made > 0 {
            bump(&self.stats.delivered, 1);
        } else {
            let nobody = match flood.group {
                Some(_) => DropReason::NoGroupMember,
                None => DropReason::NoEndpoint,
            };
            self.stats.dropped(copies.lost.unwrap_or(nobody));
        }
    }

    /// Copies one frame (without its outer tag if `untag`) into fresh
    /// frames staged for `to` (a chain if it needs more than one), as a
    /// frame of its own in the accounting.
    fn copy_to(&mut self, to: EndpointId, data: &[u8], untag: bool) {
        let cut = outer_tag_cut(data, untag);
        if too_long(data, cut, self.max_frame(to)) {
            self.stats.dropped_for(DropReason::TooLong, to);
            return;
        }
        match self.copy_chain(data, cut, None) {
            Ok(()) if self.stage_chain(to, false) => {}
            Ok(()) => self.stats.dropped_for(DropReason::EndpointGone, to),
            Err(reason) => self.stats.dropped_for(reason, to),
        }
    }

    /// The longest untagged frame endpoint `to` takes (its network's MTU +
    /// the Ethernet header); unbounded for an id the FDB does not know.
    #[inline]
    fn max_frame(&self, to: EndpointId) -> usize {
        self.fdb
            .endpoint(to)
            .map_or(usize::MAX, |e| self.fdb.network(e.network).max_frame)
    }

    /// Whether frame `d` (longer than [`Self::max_frame`]) exceeds what
    /// endpoint `to` takes: a frame with an 802.1Q tag of its own (a
    /// container's inner tag) may be 4 bytes longer, as on any Ethernet.
    #[cold]
    fn too_long_for(&self, to: EndpointId, d: P::Desc) -> bool {
        // SAFETY: `d` is a frame user space holds (staged next, on no ring).
        let data = unsafe { self.umem.data(&d) };
        too_long(data, 0, self.max_frame(to))
    }

    /// Copies a group frame into fresh frames for the endpoints `flood` names;
    /// returns how many copies were staged. The frame itself is accounted by
    /// the caller.
    fn flood_copies(&mut self, flood: &Flood, data: &[u8]) -> Copies {
        let fdb = self.fdb.clone();
        let mut targets = std::mem::take(&mut self.flood_scratch);
        targets.clear();
        let groups = self.groups.clone();
        flood_targets(&fdb, &groups, flood, |id| targets.push(id));
        let mut copies = Copies {
            made: 0,
            lost: None,
        };
        for &to in &targets {
            let cut = outer_tag_cut(data, flood.untag);
            if too_long(data, cut, self.max_frame(to)) {
                self.stats.flood_copy_dropped(to);
                copies.lost = Some(DropReason::TooLong);
                continue;
            }
            match self.copy_chain(data, cut, None) {
                Ok(()) if self.stage_chain(to, true) => copies.made += 1,
                Ok(()) => {
                    self.stats.flood_copy_dropped(to);
                    copies.lost = Some(DropReason::EndpointGone);
                }
                Err(reason) => {
                    self.stats.flood_copy_dropped(to);
                    copies.lost = Some(reason);
                }
            }
        }
        self.flood_scratch = targets;
        copies
    }

    #[inline]
    fn stage(&mut self, to: EndpointId, d: P::Desc) {
        if d.len() > self.max_frame(to) && self.too_long_for(to, d) {
            self.stats.dropped_for(DropReason::TooLong, to);
            self.pool.push(d);
            return;
        }
        match self
            .ports
            .get_mut(usize::from(to.0))
            .and_then(Option::as_mut)
        {
            Some(port) => {
                if port.staged.is_empty() {
                    self.dirty.push(to);
                }
                port.staged.push(d);
            }
            None => {
                self.stats.dropped_for(DropReason::EndpointGone, to);
                self.pool.push(d);
            }
        }
    }

    /// Hands staged frames to their rings or fds.
    fn flush(&mut self) {
        // The wire.
        if !self.to_wire.is_empty() {
            let room = self.tx_ring - self.parent_inflight.tx;
            let n = whole_chains(&self.to_wire, room);
            // SAFETY: the descriptors are frames of this UMEM owned by user space.
            let sent = unsafe { self.parent.tx(&self.to_wire[..n]) };
            debug_assert!(sent == n || sent == 0, "a TX ring took part of a batch");
            self.parent_inflight.tx += sent;
            self.pool.sent(&self.to_wire[..sent], PARENT);
            let frames = self.frames_in(&self.to_wire[..sent]) as u64;
            bump(&self.stats.wire_tx_packets, frames);
            bump(&self.stats.delivered, frames);
            // The first `sent` frames now belong to the kernel until they complete.
            debug_assert_eq!(self.to_wire.len(), self.to_wire_from.len());
            let unsent = self.to_wire.drain(..).zip(self.to_wire_from.drain(..));
            for (d, from) in unsent.skip(sent) {
                if d.options() & CONTD == 0 {
                    self.stats.dropped_for(DropReason::TxFull, from);
                }
                self.pool.push(d);
            }
        }
        kick_tx(&mut self.parent, self.parent_inflight.tx);
        // The endpoints.
        while let Some(id) = self.dirty.pop() {
            let i = usize::from(id.0);
            let Some(port) = self.ports[i].as_mut() else {
                continue;
            };
            let counters = &self.stats.endpoints[i];
            match &mut port.io {
                EndpointIo::Xsk { socket: s, .. } => {
                    let room = self.tx_ring - port.inflight.tx;
                    let n = whole_chains(&port.staged, room);
                    for d in &mut port.staged[..n] {
                        bump(&counters.tx_bytes, d.len() as u64);
                        // A chain is one frame, counted at its end.
                        let ends = d.options() & CONTD == 0;
                        if ends {
                            bump(&counters.tx_packets, 1);
                        }
                        if ends && d.options() & COPY_MARK == 0 {
                            bump(&self.stats.delivered, 1);
                        }
                        d.set_options(d.options() & CONTD);
                    }
                    // SAFETY: frames of this UMEM owned by user space.
                    let sent = unsafe { s.tx(&port.staged[..n]) };
                    debug_assert_eq!(sent, n);
                    port.inflight.tx += sent;
                    self.pool.sent(&port.staged[..sent], u32::from(id.0));
                    for d in port.staged.drain(..).skip(sent) {
                        let ends = d.options() & CONTD == 0;
                        if ends && d.options() & COPY_MARK != 0 {
                            self.stats.flood_copy_dropped(id);
                        } else if ends {
                            self.stats.dropped_for(DropReason::TxFull, id);
                        }
                        // pool.push clears the marks.
                        self.pool.push(d);
                    }
                    kick_tx(s, port.inflight.tx);
                }
                EndpointIo::Tap { port: tap, .. } => {
                    for d in port.staged.drain(..) {
                        // SAFETY: frame of this UMEM owned by user space.
                        let data = unsafe { self.umem.data(&d) };
                        if d.options() & CONTD != 0 {
                            // A chain's chunk: gathered for one write at its end.
                            self.tap_gather.extend_from_slice(data);
                            self.pool.push(d);
                            continue;
                        }
                        let frame = if self.tap_gather.is_empty() {
                            data
                        } else {
                            self.tap_gather.extend_from_slice(data);
                            &self.tap_gather[..]
                        };
                        let copy = d.options() & COPY_MARK != 0;
                        match tap.write(frame) {
                            Ok(true) => {
                                bump(&counters.tx_packets, 1);
                                bump(&counters.tx_bytes, frame.len() as u64);
                                if !copy {
                                    bump(&self.stats.delivered, 1);
                                }
                            }
                            Ok(false) | Err(_) if copy => self.stats.flood_copy_dropped(id),
                            Ok(false) => self.stats.dropped_for(DropReason::TxFull, id),
                            Err(_) => self.stats.dropped_for(DropReason::EndpointGone, id),
                        }
                        self.tap_gather.clear();
                        self.pool.push(d);
                    }
                }
            }
        }
    }

    /// Takes transmitted frames back from every completion ring.
    fn reap(&mut self) -> usize {
        let mut n = self
            .pool
            .reap(&mut self.parent, &mut self.parent_inflight, self.cfg_batch);
        for port in self.ports.iter_mut().flatten() {
            if let EndpointIo::Xsk { socket, .. } = &mut port.io {
                n += self.pool.reap(socket, &mut port.inflight, self.cfg_batch);
            }
        }
        n
    }

    /// Keeps every fill ring posted up to its target.
    fn refill(&mut self) {
        self.pool.refill(
            &mut self.parent,
            &mut self.parent_inflight,
            self.parent_fill,
            PARENT,
        );
        if let Some((punt, inflight)) = self.punt.as_mut() {
            self.pool.refill(punt, inflight, self.punt_fill, PUNT);
        }
        for (i, port) in self.ports.iter_mut().enumerate() {
            if let Some(Port {
                io:
                    EndpointIo::Xsk {
                        socket,
                        receives: true,
                    },
                inflight,
                ..
            }) = port
            {
                self.pool.refill(socket, inflight, self.port_fill, i as u32);
            }
        }
    }
}

/// Bytes behind a UMEM frame when a TAP is read: a TAP frame can be 64 KiB.
const TAP_OVERFLOW: usize = 65536;

/// Most frames an endpoint socket keeps posted on its fill ring.
pub const MAX_PORT_FILL: usize = 256;
/// Fewest frames an endpoint socket keeps posted on its fill ring.
pub const MIN_PORT_FILL: usize = 8;

/// Destination and source MAC: what stays in front when a tag goes or comes.
const MACS_LEN: usize = 12;

/// Hands a snoop event to the snooping thread without blocking; counted,
/// and counted lost when its channel is full.
#[inline]
pub fn send_snoop(
    snoops: &crossbeam_channel::Sender<SnoopEvent>,
    stats: &WorkerStats,
    event: SnoopEvent,
) {
    stats.snooped(event);
    if snoops.try_send(event).is_err() {
        bump(&stats.snoop_dropped, 1);
    }
}

/// Option bits on a staged descriptor marking a flood copy (cleared before TX).
const COPY_MARK: u32 = 0x8000_0000;

/// Descriptors the kernel transmits per kick in copy mode (its default
/// `max_tx_budget`); more are left on the ring until the next kick.
const COPY_TX_BUDGET: usize = 32;

/// How many of `staged` (at most `room`) go to a TX ring now: whole
/// chains only, so a multi-buffer frame is never cut between two batches.
#[inline]
fn whole_chains<D: Desc>(staged: &[D], room: usize) -> usize {
    let mut n = staged.len().min(room);
    while n > 0 && staged[n - 1].options() & CONTD != 0 {
        n -= 1;
    }
    n
}

/// Asks the kernel to transmit what is on a TX ring, once per budget's worth
/// of frames in flight, and only when the ring says it needs a kick.
fn kick_tx<D>(s: &mut impl XskIo<D>, inflight: usize) {
    for _ in 0..inflight.div_ceil(COPY_TX_BUDGET) {
        if !s.tx_needs_wakeup() || s.tx_wakeup().is_err() {
            break;
        }
    }
}

/// Where a frame is, for [`Worker::check_frames`] (its fields are read
/// only by the error messages, through `Debug`).
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)]
enum Place {
    Free,
    /// Staged for the endpoint with this id.
    StagedFor(usize),
    StagedForWire,
    FloodQueue(usize),
    Rings(Holder),
}

/// What became of a group frame's copies.
#[derive(Debug, Clone, Copy)]
struct Copies {
    /// Copies staged.
    made: usize,
    /// Why a copy could not be made or staged, if one could not.
    lost: Option<DropReason>,
}

/// Who holds frames on a socket's rings, for [`Worker::check_frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The parent's socket.
    Parent,
    /// The punt device's socket.
    Punt,
    /// An endpoint's socket.
    Endpoint(EndpointId),
}

impl Holder {
    fn tag(self) -> u32 {
        match self {
            Holder::Parent => PARENT,
            Holder::Punt => PUNT,
            Holder::Endpoint(id) => u32::from(id.0),
        }
    }
}

/// Ledger tag of frames held by the parent's socket.
const PARENT: u32 = u32::MAX - 1;
/// Ledger tag of frames held by the punt device's socket.
const PUNT: u32 = u32::MAX - 2;

/// The 802.1ad TPID of the fast path's punt tag (`MVDP_PUNT_TPID`).
const PUNT_TPID: u16 = crate::wire::ETHERTYPE_QINQ;
/// The punt tag's mark of a group frame copied from the wire (`MVDP_PUNT_WIRE`).
const PUNT_WIRE: u16 = 0x1000;

/// What a punted frame's punt tag says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PuntTag {
    /// Sent by this endpoint.
    Endpoint(EndpointId),
    /// A copy of a group frame from the wire.
    Wire,
}

/// The punt tag a frame from the punt device carries, if it carries one.
#[inline]
fn punt_tag(frame: &[u8]) -> Option<PuntTag> {
    let tag = frame.get(MACS_LEN..MACS_LEN + VLAN_TAG_LEN)?;
    if u16::from_be_bytes([tag[0], tag[1]]) != PUNT_TPID {
        return None;
    }
    let tci = u16::from_be_bytes([tag[2], tag[3]]);
    Some(if tci & PUNT_WIRE != 0 {
        PuntTag::Wire
    } else {
        PuntTag::Endpoint(EndpointId(tci & 0x0fff))
    })
}

/// The bytes of `data`'s outer 802.1Q tag that come off when `untag`:
/// its 4, if the frame is long enough to hold one.
#[inline]
fn outer_tag_cut(data: &[u8], untag: bool) -> usize {
    if untag && data.len() >= ETH_HEADER_LEN + VLAN_TAG_LEN {
        VLAN_TAG_LEN
    } else {
        0
    }
}

/// Whether `frame`, less the `cut` bytes of its network's tag after the
/// MACs (as an endpoint gets it), is longer than `max_frame`, allowing 4
/// more bytes for a frame whose own EtherType is then 802.1Q (a container's
/// inner tag), as Ethernet does.
#[inline]
fn too_long(frame: &[u8], cut: usize, max_frame: usize) -> bool {
    let len = frame.len() - cut;
    if len <= max_frame {
        return false;
    }
    let at = MACS_LEN + cut;
    let tagged = frame.get(at..at + 2) == Some(&ETHERTYPE_VLAN.to_be_bytes()[..]);
    !(tagged && len <= max_frame.saturating_add(VLAN_TAG_LEN))
}
