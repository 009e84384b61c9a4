//! The worker's I/O as small traits, so that the whole worker loop runs
//! against the kernel (AF_XDP sockets on a UMEM, TAP fds) or against
//! in-memory ports ([`super::mem`]) in tests and fuzzing, the way
//! smoltcp's `phy::Device` keeps its stack free of any one device.
//!
//! The worker never sees more than these traits: frame memory
//! ([`FrameMem`]), descriptors ([`Desc`]), AF_XDP sockets ([`XskIo`],
//! with their fill and completion rings) and TAP devices ([`TapIo`]).
//! [`Kernel`] binds them to the real thing; everything is resolved at
//! compile time, so the running worker pays nothing for the indirection.

use std::io;
use std::os::fd::RawFd;

use xsk_rs::{FrameDesc, Umem};

use crate::io::tap::TapPort;
use crate::io::xsk::{UmemArea, XskSocket, XskStats};

/// A frame descriptor: where a frame starts in the UMEM, how long its data
/// is, and option bits the worker may mark it with while it holds it.
pub trait Desc: Copy + Default + std::fmt::Debug {
    /// The frame's offset in the UMEM.
    fn addr(&self) -> usize;
    /// Bytes of data in the frame.
    fn len(&self) -> usize;
    /// Whether the frame holds no data.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The option bits.
    fn options(&self) -> u32;
    /// Sets the option bits.
    fn set_options(&mut self, options: u32);
    /// Clears the option bits.
    fn clear_options(&mut self) {
        self.set_options(0);
    }
}

/// The UMEM's memory. A clone is another handle on the same memory: the
/// worker reads one frame through a clone while it writes others.
///
/// # Safety of use
///
/// Every method takes a descriptor of a frame that user space holds (off
/// every ring), and no two live slices may cover the same frame with one
/// of them mutable. The worker keeps that by construction: a frame being
/// read came off an RX ring or a queue and is never on the free list, and
/// only frames popped from the free list (or held alone) are written.
pub trait FrameMem: Clone {
    /// The descriptor type of this memory's frames.
    type Desc: Desc;

    /// The frame's data.
    ///
    /// # Safety
    ///
    /// `d` is a frame user space holds, and nothing writes it meanwhile.
    unsafe fn data(&self, d: &Self::Desc) -> &[u8];

    /// Edits a frame: `f` gets the frame's whole buffer (its capacity) and
    /// its data length, which it may change (up to the buffer's length).
    ///
    /// # Safety
    ///
    /// `d` is a frame user space holds, and nothing else reads or writes
    /// it meanwhile.
    unsafe fn edit<R>(&self, d: &mut Self::Desc, f: impl FnOnce(&mut [u8], &mut usize) -> R) -> R;
}

/// An AF_XDP socket on the worker's UMEM: its RX and TX rings here, its
/// fill and completion rings through the pool's traits.
pub trait XskIo<D>: FillRing<D> + CompletionRing<D> {
    /// Writes received frames to the start of `out`; returns how many.
    ///
    /// # Safety
    ///
    /// `out` is scratch space. The frames returned are user space's.
    unsafe fn rx(&mut self, out: &mut [D]) -> usize;

    /// Hands a prefix of `frames` to the TX ring; returns how many.
    ///
    /// # Safety
    ///
    /// The frames are user space's and on no other ring.
    unsafe fn tx(&mut self, frames: &[D]) -> usize;

    /// Whether the kernel must be told that the TX ring has frames.
    fn tx_needs_wakeup(&self) -> bool;

    /// Tells it.
    fn tx_wakeup(&mut self) -> io::Result<()>;

    /// An fd to poll(2) for received frames (negative: none, poll skips it).
    fn fd(&self) -> RawFd;

    /// The kernel's ring statistics.
    fn stats(&self) -> io::Result<XskStats>;
}

/// Where the pool posts free frames: a socket's fill ring.
pub trait FillRing<D> {
    /// Posts a prefix of `frames` (all, some or none of them) and returns
    /// how many were posted.
    ///
    /// # Safety
    ///
    /// The frames must be held by user space and on no other ring.
    unsafe fn produce(&mut self, frames: &[D]) -> usize;
    /// Wakes the kernel if it asked to be told of new fill entries.
    fn wake_if_needed(&mut self);
}

/// Where the pool takes transmitted frames back: a socket's completion ring.
pub trait CompletionRing<D> {
    /// Writes completed frames to the start of `out` and returns how many.
    ///
    /// # Safety
    ///
    /// `out` must be scratch space: what it held is overwritten.
    unsafe fn consume(&mut self, out: &mut [D]) -> usize;
}

/// A TAP device: one frame per read or write.
pub trait TapIo: Clone {
    /// An fd to poll(2) for frames the container sent (negative: none).
    fn fd(&self) -> RawFd;

    /// Reads one frame into `buf`, with `overflow` behind it: a length
    /// beyond `buf.len()` means the frame did not fit. `Ok(None)` when no
    /// frame is waiting; `Err` when the device is gone.
    fn read(&self, buf: &mut [u8], overflow: &mut [u8]) -> io::Result<Option<usize>>;

    /// Hands one frame to the container. `Ok(false)` when its queue is full.
    fn write(&self, frame: &[u8]) -> io::Result<bool>;
}

/// The kinds of I/O one worker runs on.
pub trait Ports: 'static {
    /// Frame descriptors.
    type Desc: Desc + Send;
    /// The UMEM's memory.
    type Mem: FrameMem<Desc = Self::Desc> + Send;
    /// AF_XDP sockets.
    type Socket: XskIo<Self::Desc> + Send;
    /// TAP devices.
    type Tap: TapIo + Send;
}

/// The kernel's I/O: AF_XDP sockets on a UMEM, TAP fds.
#[derive(Debug)]
pub struct Kernel;

impl Ports for Kernel {
    type Desc = FrameDesc;
    type Mem = Umem;
    type Socket = XskSocket;
    type Tap = TapPort;
}

/// A worker's frames: their memory and a descriptor for each.
pub struct Frames<P: Ports> {
    /// The memory.
    pub mem: P::Mem,
    /// One descriptor per frame, all free.
    pub descs: Vec<P::Desc>,
    /// Largest frame a frame holds (bytes).
    pub mtu: usize,
    /// Bytes between the starts of two frames.
    pub frame_size: usize,
}

impl From<UmemArea> for Frames<Kernel> {
    fn from(area: UmemArea) -> Frames<Kernel> {
        Frames {
            mem: area.umem,
            descs: area.frames,
            mtu: area.mtu,
            frame_size: area.frame_size,
        }
    }
}

impl Desc for FrameDesc {
    #[inline]
    fn addr(&self) -> usize {
        FrameDesc::addr(self)
    }

    #[inline]
    fn len(&self) -> usize {
        self.lengths().data()
    }

    #[inline]
    fn options(&self) -> u32 {
        FrameDesc::options(self)
    }

    #[inline]
    fn set_options(&mut self, options: u32) {
        FrameDesc::set_options(self, options);
    }
}

impl FrameMem for Umem {
    type Desc = FrameDesc;

    #[inline]
    unsafe fn data(&self, d: &FrameDesc) -> &[u8] {
        // SAFETY: the caller's contract is Umem::data's.
        unsafe { Umem::data(self, d) }.contents()
    }

    #[inline]
    unsafe fn edit<R>(&self, d: &mut FrameDesc, f: impl FnOnce(&mut [u8], &mut usize) -> R) -> R {
        // SAFETY: the caller's contract is Umem::data_mut's.
        let mut data = unsafe { self.data_mut(d) };
        let mut len = data.contents().len();
        // The cursor's position is the data length: at the buffer's end,
        // `contents_mut` is the whole buffer.
        let cap = data.cursor().buf_len();
        data.cursor().set_pos(cap);
        let r = f(data.contents_mut(), &mut len);
        data.cursor().set_pos(len.min(cap));
        r
    }
}

impl XskIo<FrameDesc> for XskSocket {
    #[inline]
    unsafe fn rx(&mut self, out: &mut [FrameDesc]) -> usize {
        // SAFETY: the caller's contract is the RX ring's.
        unsafe { self.rx.consume(out) }
    }

    #[inline]
    unsafe fn tx(&mut self, frames: &[FrameDesc]) -> usize {
        // SAFETY: the caller's contract is the TX ring's.
        unsafe { self.tx.produce(frames) }
    }

    #[inline]
    fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    #[inline]
    fn tx_wakeup(&mut self) -> io::Result<()> {
        self.tx.wakeup()
    }

    fn fd(&self) -> RawFd {
        XskSocket::fd(self)
    }

    fn stats(&self) -> io::Result<XskStats> {
        XskSocket::stats(self)
    }
}

impl FillRing<FrameDesc> for XskSocket {
    #[inline]
    unsafe fn produce(&mut self, frames: &[FrameDesc]) -> usize {
        // SAFETY: the caller's contract is the fill ring's.
        unsafe { self.fq.produce(frames) }
    }

    #[inline]
    fn wake_if_needed(&mut self) {
        if self.fq.needs_wakeup() {
            let _ = self.rx.poll(0);
        }
    }
}

impl CompletionRing<FrameDesc> for XskSocket {
    #[inline]
    unsafe fn consume(&mut self, out: &mut [FrameDesc]) -> usize {
        // SAFETY: the caller's contract is the completion ring's.
        unsafe { self.cq.consume(out) }
    }
}

impl TapIo for TapPort {
    fn fd(&self) -> RawFd {
        TapPort::fd(self)
    }

    #[inline]
    fn read(&self, buf: &mut [u8], overflow: &mut [u8]) -> io::Result<Option<usize>> {
        TapPort::read(self, buf, overflow)
    }

    #[inline]
    fn write(&self, frame: &[u8]) -> io::Result<bool> {
        TapPort::write(self, frame)
    }
}
