//! AF_XDP sockets (xsk-rs): one UMEM per worker, shared by the worker's parent
//! socket and its endpoint sockets, so a frame moves between rings by descriptor.

use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// How long a bind waits for a queue that a just-closed socket still holds.
const QUEUE_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether a socket creation failed because the queue is taken (`EBUSY`).
fn busy(error: &xsk_rs::socket::SocketCreateError) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error)
        == Some(libc::EBUSY)
}

/// How to bind a socket: zero-copy, copy, or zero-copy falling back to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// Try zero-copy, fall back to copy mode when the driver refuses (veth does).
    Auto,
    /// Zero-copy or fail.
    ZeroCopy,
    /// Copy mode.
    Copy,
}

/// Why a UMEM or socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// A ring or frame size is not acceptable to the kernel.
    #[error("invalid AF_XDP setting: {0}")]
    Setting(String),
    /// UMEM registration failed.
    #[error("cannot create a UMEM of {frames} frames of {frame_size} bytes: {source}")]
    Umem {
        /// Frames asked for.
        frames: u32,
        /// Frame size asked for.
        frame_size: u32,
        /// What the kernel or xsk-rs said.
        source: xsk_rs::umem::UmemCreateError,
    },
    /// Socket creation or bind failed.
    #[error("cannot bind an AF_XDP socket to {ifname} queue {queue} ({mode}): {source}")]
    Bind {
        /// Interface.
        ifname: String,
        /// Queue id.
        queue: u32,
        /// Bind mode tried.
        mode: &'static str,
        /// What the kernel or xsk-rs said.
        source: xsk_rs::socket::SocketCreateError,
    },
    /// The UMEM's fill/completion rings were already taken for this device and queue.
    #[error("{ifname} queue {queue} is already bound from this UMEM")]
    AlreadyBound {
        /// Interface.
        ifname: String,
        /// Queue id.
        queue: u32,
    },
}

/// Ring sizes of one socket (all powers of two), and whether it takes
/// multi-buffer frames.
#[derive(Debug, Clone, Copy)]
pub struct RingSizes {
    /// RX ring entries.
    pub rx: u32,
    /// TX ring entries.
    pub tx: u32,
    /// Bind with `XDP_USE_SG`: a frame longer than one UMEM frame comes
    /// and goes as a chain of descriptors, all but the last marked
    /// `XDP_PKT_CONTD` (Linux 6.6; in zero-copy mode, drivers that say so).
    pub multi_buffer: bool,
}

/// A UMEM and the descriptors of all its frames, handed out once.
pub struct UmemArea {
    /// The shared memory region.
    pub umem: Umem,
    /// Every frame's descriptor; the caller owns them from here on.
    pub frames: Vec<FrameDesc>,
    /// Usable bytes per frame (frame size minus headroom).
    pub mtu: usize,
    /// Bytes per frame: `addr / frame_size` is a frame's index.
    pub frame_size: usize,
}

/// Registers a UMEM of `frames` frames of `frame_size` bytes, with fill and
/// completion rings of `ring` entries for every device/queue bound to it.
pub fn create_umem(frames: u32, frame_size: u32, ring: u32) -> Result<UmemArea, XskError> {
    let setting = |e: &dyn std::fmt::Display| XskError::Setting(e.to_string());
    let config = UmemConfig::builder()
        .frame_size(FrameSize::new(frame_size).map_err(|e| setting(&e))?)
        .fill_queue_size(QueueSize::new(ring).map_err(|e| setting(&e))?)
        .comp_queue_size(QueueSize::new(ring).map_err(|e| setting(&e))?)
        .build()
        .map_err(|e| setting(&e))?;
    let mtu = config.mtu() as usize;
    let count = NonZeroU32::new(frames)
        .ok_or_else(|| XskError::Setting("umem_frames must be > 0".into()))?;
    let (umem, frames_vec) = Umem::new(config, count, false).map_err(|source| XskError::Umem {
        frames,
        frame_size,
        source,
    })?;
    Ok(UmemArea {
        umem,
        frames: frames_vec,
        mtu,
        frame_size: frame_size as usize,
    })
}

/// One AF_XDP socket with its own fill and completion rings.
pub struct XskSocket {
    /// Frames to transmit.
    pub tx: TxQueue,
    /// Frames received.
    pub rx: RxQueue,
    /// Empty frames handed to the kernel for reception.
    pub fq: FillQueue,
    /// Transmitted frames handed back.
    pub cq: CompQueue,
    /// Whether the socket runs in zero-copy mode.
    pub zerocopy: bool,
    /// Interface it is bound to.
    pub ifname: String,
    /// Queue it is bound to.
    pub queue: u32,
}

impl XskSocket {
    /// Binds a socket to `ifname`/`queue` on `umem`. Never loads libxdp's default
    /// XDP program: mvdp's own program steers frames into the socket.
    pub fn bind(
        umem: &Umem,
        ifname: &str,
        queue: u32,
        bind: Bind,
        rings: RingSizes,
    ) -> Result<XskSocket, XskError> {
        match bind {
            Bind::ZeroCopy => Self::bind_with(umem, ifname, queue, true, rings),
            Bind::Copy => Self::bind_with(umem, ifname, queue, false, rings),
            Bind::Auto => match Self::bind_with(umem, ifname, queue, true, rings) {
                Ok(s) => Ok(s),
                Err(e) => {
                    log::info!(
                        "{ifname} queue {queue}: zero-copy unavailable ({e}); using copy mode"
                    );
                    Self::bind_with(umem, ifname, queue, false, rings)
                }
            },
        }
    }

    /// Binds, waiting up to [`QUEUE_RELEASE_WAIT`] while the queue is still
    /// held (`EBUSY`) by a socket that was just closed: the kernel releases
    /// a socket's hold on its queue in deferred work, after its process has
    /// gone, so a restarted mvdp can find the queue busy for a moment.
    fn bind_with(
        umem: &Umem,
        ifname: &str,
        queue: u32,
        zerocopy: bool,
        rings: RingSizes,
    ) -> Result<XskSocket, XskError> {
        let deadline = std::time::Instant::now() + QUEUE_RELEASE_WAIT;
        let mut logged = false;
        loop {
            match Self::bind_once(umem, ifname, queue, zerocopy, rings) {
                Err(XskError::Bind { ref source, .. })
                    if busy(source) && std::time::Instant::now() < deadline =>
                {
                    if !logged {
                        log::info!("{ifname} queue {queue} is still held by a closed AF_XDP socket; waiting for the kernel to release it");
                        logged = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                result => return result,
            }
        }
    }

    fn bind_once(
        umem: &Umem,
        ifname: &str,
        queue: u32,
        zerocopy: bool,
        rings: RingSizes,
    ) -> Result<XskSocket, XskError> {
        let setting = |e: &dyn std::fmt::Display| XskError::Setting(e.to_string());
        let mut flags = if zerocopy {
            BindFlags::XDP_ZEROCOPY
        } else {
            BindFlags::XDP_COPY
        } | BindFlags::XDP_USE_NEED_WAKEUP;
        if rings.multi_buffer {
            flags |= BindFlags::XDP_USE_SG;
        }
        let config = SocketConfig::builder()
            .rx_queue_size(QueueSize::new(rings.rx).map_err(|e| setting(&e))?)
            .tx_queue_size(QueueSize::new(rings.tx).map_err(|e| setting(&e))?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(flags)
            .build();
        let name = CString::new(ifname).map_err(|e| setting(&e))?;
        // SAFETY: INHIBIT_PROG_LOAD is set, which is what `Socket::new` requires
        // for sockets sharing a UMEM; mvdp binds each (device, queue) once.
        let (tx, rx, rings) = unsafe { Socket::new(config, umem, &Interface::new(name), queue) }
            .map_err(|source| XskError::Bind {
                ifname: ifname.to_string(),
                queue,
                mode: match (zerocopy, rings.multi_buffer) {
                    (true, false) => "zero-copy",
                    (false, false) => "copy",
                    (true, true) => "zero-copy, multi-buffer",
                    (false, true) => "copy, multi-buffer",
                },
                source,
            })?;
        let (fq, cq) = rings.ok_or_else(|| XskError::AlreadyBound {
            ifname: ifname.to_string(),
            queue,
        })?;
        Ok(XskSocket {
            tx,
            rx,
            fq,
            cq,
            zerocopy,
            ifname: ifname.to_string(),
            queue,
        })
    }

    /// The socket's file descriptor (for the XSKMAP and poll()).
    pub fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// Kernel-side ring statistics.
    pub fn stats(&self) -> io::Result<XskStats> {
        let s = self.rx.fd().xdp_statistics()?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
            tx_ring_empty_descs: s.tx_ring_empty_descs(),
        })
    }
}

/// The kernel's `struct xdp_statistics` for one socket (or a sum of sockets').
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Dropped for reasons other than invalid descriptors.
    pub rx_dropped: u64,
    /// Dropped due to invalid descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}

impl XskStats {
    /// Adds another socket's figures to these.
    pub fn add(&mut self, o: &XskStats) {
        self.rx_dropped += o.rx_dropped;
        self.rx_invalid_descs += o.rx_invalid_descs;
        self.tx_invalid_descs += o.tx_invalid_descs;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_fill_ring_empty_descs += o.rx_fill_ring_empty_descs;
        self.tx_ring_empty_descs += o.tx_ring_empty_descs;
    }
}
