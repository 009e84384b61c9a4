//! In-memory ports: the whole worker loop — receive, classify, flood, rate
//! limits, VLAN push and pop, transmit, frame reclaim — without a kernel.
//!
//! [`MemWorker`] builds a [`Worker`] on [`Mem`] ports and plays the
//! kernel's part from outside: it delivers frames onto RX rings (taking
//! frames off fill rings, as the kernel does), transmits what the worker
//! put on TX rings (handing the frames back on completion rings), feeds
//! TAP devices and the group listener's queue, and then runs the worker
//! one [`MemWorker::step`] at a time. [`MemWorker::check`] proves the two
//! laws the data plane lives by: every UMEM frame is in exactly one place,
//! and every frame that entered was delivered or dropped for a reason.
//! The unit tests and the `worker` fuzz target drive it.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::limit::Limiters;
use super::port::{CompletionRing, Desc, FillRing, FrameMem, Frames, Ports, TapIo, XskIo};
use super::worker::{
    Command, EndpointIo, EventFd, GroupFrame, Holder, Worker, WorkerConfig, CONTD,
};
use crate::config::Poll;
use crate::io::xsk::XskStats;
use crate::metrics::{totals, Source, Totals, WorkerStats};
use crate::switch::{EndpointId, Fdb, GroupTable, SnoopEvent};

/// In-memory I/O.
#[derive(Debug)]
pub struct Mem;

impl Ports for Mem {
    type Desc = MemDesc;
    type Mem = MemFrames;
    type Socket = MemSocket;
    type Tap = MemTap;
}

/// A frame descriptor: the frame's offset, its data length, option bits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemDesc {
    addr: usize,
    len: usize,
    options: u32,
}

impl Desc for MemDesc {
    fn addr(&self) -> usize {
        self.addr
    }
    fn len(&self) -> usize {
        self.len
    }
    fn options(&self) -> u32 {
        self.options
    }
    fn set_options(&mut self, options: u32) {
        self.options = options;
    }
}

/// A UMEM on the heap: `frames` frames of `frame_size` bytes.
#[derive(Debug, Clone)]
pub struct MemFrames(Arc<Area>);

#[derive(Debug)]
struct Area {
    base: *mut u8,
    layout: Layout,
    frame_size: usize,
}

// SAFETY: the area is plain memory; who may touch which frame is the
// worker's discipline (see `FrameMem`), as with a real UMEM.
unsafe impl Send for Area {}
// SAFETY: as above.
unsafe impl Sync for Area {}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: allocated in `MemFrames::new` with this layout.
        unsafe { dealloc(self.base, self.layout) };
    }
}

impl MemFrames {
    /// The memory and a descriptor for each frame.
    pub fn new(frames: usize, frame_size: usize) -> (MemFrames, Vec<MemDesc>) {
        assert!(
            frames > 0 && frame_size >= 64,
            "a UMEM of {frames} x {frame_size}"
        );
        let layout = Layout::from_size_align(frames * frame_size, 4096).expect("a UMEM layout");
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        assert!(!base.is_null(), "out of memory for a test UMEM");
        let descs = (0..frames)
            .map(|i| MemDesc {
                addr: i * frame_size,
                len: 0,
                options: 0,
            })
            .collect();
        let area = Area {
            base,
            layout,
            frame_size,
        };
        (MemFrames(Arc::new(area)), descs)
    }

    /// A frame's whole buffer.
    ///
    /// # Safety
    ///
    /// As [`FrameMem::edit`]: nothing else touches the frame meanwhile.
    #[allow(clippy::mut_from_ref)]
    unsafe fn buf(&self, d: &MemDesc) -> &mut [u8] {
        let a = &self.0;
        assert!(
            d.addr % a.frame_size == 0 && d.addr + a.frame_size <= a.layout.size(),
            "descriptor {d:?} is not a frame of this UMEM"
        );
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(a.base.add(d.addr), a.frame_size) }
    }
}

impl FrameMem for MemFrames {
    type Desc = MemDesc;

    unsafe fn data(&self, d: &MemDesc) -> &[u8] {
        // SAFETY: the caller's contract.
        let buf = unsafe { self.buf(d) };
        &buf[..d.len]
    }

    unsafe fn edit<R>(&self, d: &mut MemDesc, f: impl FnOnce(&mut [u8], &mut usize) -> R) -> R {
        // SAFETY: the caller's contract.
        let buf = unsafe { self.buf(d) };
        let cap = buf.len();
        let mut len = d.len;
        let r = f(buf, &mut len);
        d.len = len.min(cap);
        r
    }
}

/// The four rings of one socket, as the kernel would see them.
#[derive(Debug, Default)]
struct Rings {
    fill: VecDeque<MemDesc>,
    rx: VecDeque<MemDesc>,
    tx: VecDeque<MemDesc>,
    comp: VecDeque<MemDesc>,
    /// Entries each ring holds.
    size: usize,
    /// The worker closed its end: the kernel let go of every frame.
    closed: bool,
    /// Frames the kernel could not deliver (no fill entry, RX ring full, too long).
    rx_dropped: u64,
}

fn lock(r: &Mutex<Rings>) -> MutexGuard<'_, Rings> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// The worker's end of an in-memory AF_XDP socket. Dropping it closes the
/// socket: the frames on its rings are the kernel's to forget, and the
/// worker's ledger takes them back.
#[derive(Debug)]
pub struct MemSocket(Arc<Mutex<Rings>>);

impl Drop for MemSocket {
    fn drop(&mut self) {
        let mut r = lock(&self.0);
        r.closed = true;
        r.fill.clear();
        r.rx.clear();
        r.tx.clear();
        r.comp.clear();
    }
}

fn take_into(from: &mut VecDeque<MemDesc>, out: &mut [MemDesc]) -> usize {
    let n = out.len().min(from.len());
    for (o, d) in out.iter_mut().zip(from.drain(..n)) {
        *o = d;
    }
    n
}

impl FillRing<MemDesc> for MemSocket {
    unsafe fn produce(&mut self, frames: &[MemDesc]) -> usize {
        let mut r = lock(&self.0);
        let n = frames.len().min(r.size - r.fill.len());
        r.fill.extend(&frames[..n]);
        n
    }
    fn wake_if_needed(&mut self) {}
}

impl CompletionRing<MemDesc> for MemSocket {
    unsafe fn consume(&mut self, out: &mut [MemDesc]) -> usize {
        take_into(&mut lock(&self.0).comp, out)
    }
}

impl XskIo<MemDesc> for MemSocket {
    unsafe fn rx(&mut self, out: &mut [MemDesc]) -> usize {
        take_into(&mut lock(&self.0).rx, out)
    }

    unsafe fn tx(&mut self, frames: &[MemDesc]) -> usize {
        let mut r = lock(&self.0);
        let n = frames.len().min(r.size - r.tx.len());
        r.tx.extend(&frames[..n]);
        n
    }

    fn tx_needs_wakeup(&self) -> bool {
        false
    }

    fn tx_wakeup(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn fd(&self) -> RawFd {
        -1
    }

    fn stats(&self) -> io::Result<XskStats> {
        Ok(XskStats {
            rx_dropped: lock(&self.0).rx_dropped,
            ..XskStats::default()
        })
    }
}

/// The kernel's end of an in-memory socket.
#[derive(Debug, Clone)]
pub struct SocketCtl {
    rings: Arc<Mutex<Rings>>,
    mem: MemFrames,
    /// Bound for multi-buffer frames (`XDP_USE_SG`): they come and go as
    /// chains of frames, all but the last marked [`CONTD`].
    sg: bool,
}

impl SocketCtl {
    /// Receives `frame` as the kernel would: into the next frame on the
    /// fill ring (a chain of them, on a socket bound for multi-buffer
    /// frames, if it is longer than one), then onto the RX ring. False
    /// (and counted) when the socket is closed, lacks fill entries or RX
    /// ring room for the whole frame, or the frame does not fit.
    pub fn deliver(&self, frame: &[u8]) -> bool {
        let mut r = lock(&self.rings);
        if r.closed {
            return false;
        }
        // A UMEM frame's worth each; an empty frame is one empty chunk.
        let parts: Vec<&[u8]> = match frame.len() {
            0 => vec![frame],
            _ => frame.chunks(self.mem.0.frame_size).collect(),
        };
        let chunks = parts.len();
        if (chunks > 1 && !self.sg) || r.rx.len() + chunks > r.size || r.fill.len() < chunks {
            r.rx_dropped += 1;
            return false;
        }
        for (k, part) in parts.into_iter().enumerate() {
            let Some(mut d) = r.fill.pop_front() else {
                unreachable!("{chunks} fill entries were posted");
            };
            // SAFETY: a frame on the fill ring is the kernel's, and the kernel is us.
            unsafe {
                self.mem.edit(&mut d, |buf, len| {
                    buf[..part.len()].copy_from_slice(part);
                    *len = part.len();
                })
            };
            d.options = if k + 1 < chunks { CONTD } else { 0 };
            r.rx.push_back(d);
        }
        true
    }

    /// Transmits up to `max` frames from the TX ring (as far as the
    /// completion ring has room; a chain whole) and returns them.
    pub fn transmit(&self, max: usize) -> Vec<Vec<u8>> {
        let mut r = lock(&self.rings);
        let mut out = Vec::new();
        while out.len() < max {
            // A frame is its descriptors up to the first without CONTD; an
            // unfinished chain waits, as the kernel's does.
            let Some(k) = r.tx.iter().position(|d| d.options & CONTD == 0) else {
                break;
            };
            assert!(
                self.sg || k == 0,
                "a chain on a socket not bound for multi-buffer frames: {:?}",
                r.tx
            );
            if r.comp.len() + k + 1 > r.size {
                break;
            }
            let mut frame = Vec::new();
            for _ in 0..=k {
                let Some(d) = r.tx.pop_front() else { break };
                // SAFETY: a frame on the TX ring is the kernel's, and the kernel is us.
                frame.extend_from_slice(unsafe { self.mem.data(&d) });
                r.comp.push_back(d);
            }
            out.push(frame);
        }
        out
    }

    /// Loses the frames on the completion ring, as a broken kernel would
    /// (for the tests of [`MemWorker::check`] itself).
    pub fn forget_completions(&self) {
        lock(&self.rings).comp.clear();
    }

    /// Frames posted to the fill ring.
    pub fn fill_len(&self) -> usize {
        lock(&self.rings).fill.len()
    }

    /// Frames waiting on the TX ring.
    pub fn tx_len(&self) -> usize {
        lock(&self.rings).tx.len()
    }

    /// Frames the kernel could not deliver.
    pub fn rx_dropped(&self) -> u64 {
        lock(&self.rings).rx_dropped
    }

    /// Offsets of every frame on the socket's rings.
    fn held(&self) -> Vec<usize> {
        let r = lock(&self.rings);
        let mut out = Vec::with_capacity(r.fill.len() + r.rx.len() + r.tx.len() + r.comp.len());
        for ring in [&r.fill, &r.rx, &r.tx, &r.comp] {
            let (a, b) = ring.as_slices();
            out.extend(a.iter().chain(b).map(|d| d.addr));
        }
        out
    }
}

/// A TAP device's queues.
#[derive(Debug, Default)]
struct TapQueues {
    /// Frames the container sent, oldest first.
    from_container: VecDeque<Vec<u8>>,
    /// Frames mvdp wrote to the container.
    to_container: Vec<Vec<u8>>,
    /// Frames the device queues for the container before writes fail.
    room: usize,
    /// The device is gone: every read and write fails.
    gone: bool,
}

/// The worker's end of an in-memory TAP device.
#[derive(Debug, Clone)]
pub struct MemTap(Arc<Mutex<TapQueues>>);

fn lock_tap(t: &Mutex<TapQueues>) -> MutexGuard<'_, TapQueues> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

impl TapIo for MemTap {
    fn fd(&self) -> RawFd {
        -1
    }

    fn read(&self, buf: &mut [u8], overflow: &mut [u8]) -> io::Result<Option<usize>> {
        let mut t = lock_tap(&self.0);
        if t.gone {
            return Err(io::Error::from_raw_os_error(libc::EBADFD));
        }
        let Some(frame) = t.from_container.pop_front() else {
            return Ok(None);
        };
        // Like tun: what fits in the two buffers, and that length.
        let head = frame.len().min(buf.len());
        buf[..head].copy_from_slice(&frame[..head]);
        let tail = (frame.len() - head).min(overflow.len());
        overflow[..tail].copy_from_slice(&frame[head..head + tail]);
        Ok(Some(head + tail))
    }

    fn write(&self, frame: &[u8]) -> io::Result<bool> {
        let mut t = lock_tap(&self.0);
        if t.gone {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        if t.to_container.len() >= t.room {
            return Ok(false);
        }
        t.to_container.push(frame.to_vec());
        Ok(true)
    }
}

/// The container's end of an in-memory TAP device.
#[derive(Debug, Clone)]
pub struct TapCtl(Arc<Mutex<TapQueues>>);

impl TapCtl {
    /// The container sends `frame`.
    pub fn send(&self, frame: &[u8]) {
        lock_tap(&self.0).from_container.push_back(frame.to_vec());
    }

    /// Takes what mvdp wrote to the container so far.
    pub fn take_received(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut lock_tap(&self.0).to_container)
    }

    /// Frames the container has not read yet.
    pub fn queued(&self) -> usize {
        lock_tap(&self.0).to_container.len()
    }

    /// The device disappears (its container is gone).
    pub fn vanish(&self) {
        lock_tap(&self.0).gone = true;
    }
}

/// Sizes of a [`MemWorker`]'s UMEM and rings.
#[derive(Debug, Clone, Copy)]
pub struct MemSizes {
    /// UMEM frames.
    pub frames: usize,
    /// Bytes per frame.
    pub frame_size: usize,
    /// Entries per ring.
    pub ring: usize,
    /// Frames per RX batch.
    pub batch: usize,
    /// Fill entries kept posted on the parent (and the punt socket).
    pub parent_fill: usize,
    /// Fill entries the endpoint sockets share.
    pub port_fill_budget: usize,
    /// Group frames the listener's queue holds.
    pub flood_queue: usize,
    /// The longest frame carried as a chain of frames (the sockets are
    /// "bound with `XDP_USE_SG`"); `None`: one frame at most.
    pub jumbo: Option<usize>,
}

impl Default for MemSizes {
    fn default() -> MemSizes {
        MemSizes {
            frames: 512,
            frame_size: 2048,
            ring: 64,
            batch: 16,
            parent_fill: 64,
            port_fill_budget: 128,
            flood_queue: 32,
            jumbo: None,
        }
    }
}

/// A worker on in-memory ports, and the kernel's side of each port.
pub struct MemWorker {
    worker: Worker<Mem>,
    commands: Sender<Command<Mem>>,
    mem: MemFrames,
    frames: usize,
    parent: SocketCtl,
    punt: Option<SocketCtl>,
    sockets: Vec<(EndpointId, SocketCtl)>,
    floods: Sender<GroupFrame>,
    flood_rx: Receiver<GroupFrame>,
    /// Buffers the worker handed back (drained so the queue never fills).
    recycle: Receiver<Vec<u8>>,
    ring: usize,
    /// The sockets take multi-buffer frames.
    sg: bool,
    stats: Arc<WorkerStats>,
    /// What the worker snooped, as the snooping thread would get it.
    snoops: Receiver<SnoopEvent>,
}

impl MemWorker {
    /// A worker over `fdb` with no endpoint yet.
    pub fn new(fdb: Arc<Fdb>, sizes: MemSizes) -> MemWorker {
        MemWorker::sharing(
            fdb,
            sizes,
            Arc::new(Limiters::new(crate::switch::ENDPOINT_SLOTS)),
        )
    }

    /// A worker whose endpoints' rate limits are shared with other workers.
    pub fn sharing(fdb: Arc<Fdb>, sizes: MemSizes, limits: Arc<Limiters>) -> MemWorker {
        let (mem, descs) = MemFrames::new(sizes.frames, sizes.frame_size);
        let (parent, parent_ctl) = socket(&mem, sizes.ring, sizes.jumbo.is_some());
        let (commands, commands_rx) = crossbeam_channel::unbounded();
        let (floods, flood_rx) = bounded(sizes.flood_queue.max(1));
        let (recycle_tx, recycle) = bounded(64);
        let (events, _) = crossbeam_channel::unbounded();
        let (snoops, snoops_rx) = bounded(sizes.flood_queue.max(1));
        let stats = Arc::new(WorkerStats::new("mem".into()));
        let cfg = WorkerConfig::<Mem> {
            queue: 0,
            core: None,
            umem: Frames {
                mem: mem.clone(),
                descs,
                mtu: sizes.frame_size,
                frame_size: sizes.frame_size,
            },
            parent,
            fdb,
            batch: sizes.batch,
            parent_fill: sizes.parent_fill,
            punt_fill: sizes.parent_fill,
            port_fill_budget: sizes.port_fill_budget,
            tx_ring: sizes.ring,
            commands: commands_rx,
            floods: vec![flood_rx.clone()],
            recycle: recycle_tx,
            poll: Poll::Interrupt,
            limits,
            stats: stats.clone(),
            events,
            snoops,
            jumbo: sizes.jumbo,
        };
        let wake = Arc::new(EventFd::new().expect("an eventfd"));
        let mut worker = Worker::new(cfg, wake);
        worker.start();
        MemWorker {
            worker,
            commands,
            mem,
            frames: sizes.frames,
            parent: parent_ctl,
            punt: None,
            sockets: Vec::new(),
            floods,
            flood_rx,
            recycle,
            ring: sizes.ring,
            sg: sizes.jumbo.is_some(),
            stats,
            snoops: snoops_rx,
        }
    }

    /// The parent socket's kernel side: the wire.
    pub fn wire(&self) -> SocketCtl {
        self.parent.clone()
    }

    /// The punt device's kernel side, once [`MemWorker::set_punt`] made one.
    pub fn punt(&self) -> Option<&SocketCtl> {
        self.punt.as_ref()
    }

    /// Serves endpoint `id` through an AF_XDP socket (`receives`: its
    /// container's frames arrive on it) from the next step on.
    pub fn add_veth(&mut self, id: EndpointId, receives: bool) -> SocketCtl {
        self.remove_ctl(id);
        let (socket, ctl) = socket(&self.mem, self.ring, self.sg);
        self.send(Command::AddPort(id, EndpointIo::Xsk { socket, receives }));
        self.sockets.push((id, ctl.clone()));
        ctl
    }

    /// Serves endpoint `id` through a TAP device whose container queue
    /// holds `room` frames.
    pub fn add_tap(&mut self, id: EndpointId, room: usize) -> TapCtl {
        self.remove_ctl(id);
        let queues = Arc::new(Mutex::new(TapQueues {
            room,
            ..TapQueues::default()
        }));
        let port = MemTap(queues.clone());
        self.send(Command::AddPort(id, EndpointIo::Tap { port, read: true }));
        TapCtl(queues)
    }

    /// Stops serving endpoint `id`.
    pub fn remove(&mut self, id: EndpointId) {
        self.remove_ctl(id);
        self.send(Command::RemovePort(id));
    }

    /// Gives the worker a punt device (a new one replaces the old).
    pub fn set_punt(&mut self) -> SocketCtl {
        let (socket, ctl) = socket(&self.mem, self.ring, self.sg);
        self.send(Command::SetPunt(socket));
        self.punt = Some(ctl.clone());
        ctl
    }

    /// A new multicast group table from the next step on.
    pub fn set_groups(&mut self, groups: Arc<GroupTable>) {
        self.send(Command::Groups(groups));
    }

    /// The snoop events the worker sent since the last call.
    pub fn snooped(&self) -> Vec<SnoopEvent> {
        self.snoops.try_iter().collect()
    }

    /// A new FDB from the next step on.
    pub fn set_fdb(&mut self, fdb: Arc<Fdb>) {
        self.send(Command::Fdb(fdb));
    }

    /// Queues a group frame as the group listener would (which counts it
    /// as received from the wire's groups). False when the queue is full:
    /// the listener's overflow, not the worker's.
    pub fn flood(&mut self, frame: GroupFrame) -> bool {
        if self.floods.try_send(frame).is_err() {
            return false;
        }
        self.stats.received(Source::WireGroup, 1);
        true
    }

    /// One pass of the worker loop; returns the work it found.
    pub fn step(&mut self) -> usize {
        let work = self
            .worker
            .step()
            .expect("the worker is never told to stop");
        if work == 0 {
            // Where the running worker would sleep in poll() and wake to
            // read every TAP: here the caller may have queued frames since.
            self.worker.woken();
        }
        while self.recycle.try_recv().is_ok() {}
        work
    }

    /// The worker's counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Its totals.
    pub fn totals(&self) -> Totals {
        totals(std::slice::from_ref(&self.stats))
    }

    /// Frames that entered and are neither delivered nor dropped yet: group
    /// frames waiting in the listener's queue or the worker's flood queues.
    pub fn pending(&self) -> u64 {
        (self.flood_rx.len() + self.worker.queued_group_frames()) as u64
    }

    /// Checks, between steps, that every UMEM frame is in exactly one place
    /// (free, on one socket's rings, or held by the worker) and agrees with
    /// the worker's ledger, and that every frame that entered was delivered,
    /// dropped for a reason or is still queued.
    pub fn check(&self) -> Result<(), String> {
        let mut rings = vec![(Holder::Parent, self.parent.held())];
        if let Some(p) = &self.punt {
            rings.push((Holder::Punt, p.held()));
        }
        for (id, ctl) in &self.sockets {
            rings.push((Holder::Endpoint(*id), ctl.held()));
        }
        self.worker.check_frames(self.frames, &rings)?;
        let t = self.totals();
        let accounted = t.delivered + t.dropped_all() + self.pending();
        if t.received_all() != accounted {
            return Err(format!(
                "received {} != delivered {} + dropped {} + pending {}",
                t.received_all(),
                t.delivered,
                t.dropped_all(),
                self.pending()
            ));
        }
        Ok(())
    }

    fn send(&self, c: Command<Mem>) {
        self.commands
            .send(c)
            .expect("the worker holds its command queue");
    }

    fn remove_ctl(&mut self, id: EndpointId) {
        self.sockets.retain(|(i, _)| *i != id);
    }
}

fn socket(mem: &MemFrames, ring: usize, sg: bool) -> (MemSocket, SocketCtl) {
    let rings = Arc::new(Mutex::new(Rings {
        size: ring,
        ..Rings::default()
    }));
    (
        MemSocket(rings.clone()),
        SocketCtl {
            rings,
            mem: mem.clone(),
            sg,
        },
    )
}

impl std::fmt::Debug for MemWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemWorker")
            .field("frames", &self.frames)
            .field("endpoints", &self.sockets.len())
            .field("received", &self.totals().received_all())
            .field("free", &self.stats.umem_free.load(Relaxed))
            .finish()
    }
}
