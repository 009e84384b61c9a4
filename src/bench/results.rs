//! The figures `mvdp bench` produces: one run of the side-by-side comparison.

use serde::Serialize;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// The kernel's macvlan, mode bridge, one macvlan per container namespace (the baseline).
    KernelMacvlan,
    /// mvdp with veth endpoints.
    MvdpVeth,
    /// mvdp with TAP endpoints.
    MvdpTap,
}

impl System {
    /// All systems, baseline first.
    pub const ALL: [System; 3] = [System::KernelMacvlan, System::MvdpVeth, System::MvdpTap];

    /// A short human label.
    pub fn label(self) -> &'static str {
        match self {
            System::KernelMacvlan => "kernel macvlan",
            System::MvdpVeth => "mvdp veth",
            System::MvdpTap => "mvdp tap",
        }
    }
}

/// Medians (and the raw samples) of one system at one frame size.
#[derive(Debug, Clone, Serialize)]
pub struct SystemResult {
    /// Which system.
    pub system: System,
    /// Frame size on the wire without FCS (60 for "64-byte" frames, 1514).
    pub frame_len: usize,
    /// Maximum offered load (the generator unthrottled): frames offered, median over runs.
    pub max_offered_frames: u64,
    /// Frames delivered to the containers' interfaces (their rx counters), median.
    pub max_delivered_frames: u64,
    /// Loss at maximum load: 1 - delivered/offered, median.
    pub max_loss_ratio: f64,
    /// Offered frames/s at maximum load, median.
    pub max_offered_fps: f64,
    /// Delivered frames/s at maximum load, median.
    pub max_delivered_fps: f64,
    /// The highest offered rate (frames/s) with zero loss found by the search, median.
    pub zero_loss_fps: f64,
    /// The fixed offered rate (frames/s) at which CPU cost is compared (same for every system).
    pub fixed_rate_fps: f64,
    /// Delivered frames at the fixed rate, median.
    pub fixed_delivered_frames: u64,
    /// Loss at the fixed rate, median (should be 0 for the CPU figure to be fair).
    pub fixed_loss_ratio: f64,
    /// CPU time per delivered frame at the fixed rate, all cores, nanoseconds, median.
    pub cpu_ns_per_frame: f64,
    /// Raw per-run samples of delivered frames/s at maximum load.
    pub samples_max_delivered_fps: Vec<f64>,
    /// Raw per-run samples of the zero-loss rate.
    pub samples_zero_loss_fps: Vec<f64>,
    /// Raw per-run samples of CPU ns per delivered frame at the fixed rate.
    pub samples_cpu_ns_per_frame: Vec<f64>,
}

/// mvdp/kernel ratios at one frame size (medians over medians).
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// mvdp system.
    pub system: System,
    /// Frame length.
    pub frame_len: usize,
    /// Delivered frames/s at max load, mvdp / kernel (goal ≥ 1.0).
    pub max_delivered_fps: f64,
    /// Zero-loss rate, mvdp / kernel (goal ≥ 1.0).
    pub zero_loss_fps: f64,
    /// CPU per delivered frame, mvdp / kernel (goal ≤ 1.0).
    pub cpu_ns_per_frame: f64,
}

/// Resident memory of the daemon.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    /// Endpoints configured.
    pub endpoints: usize,
    /// VmRSS right after start, KiB.
    pub rss_idle_kib: u64,
    /// VmRSS after traffic, KiB.
    pub rss_after_traffic_kib: u64,
}

/// Everything one `mvdp bench` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResults {
    /// The command line that produced these results.
    pub command: String,
    /// When (UTC, RFC 3339).
    pub started_at: String,
    /// Kernel release.
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Containers on the rig.
    pub containers: usize,
    /// Runs per figure (medians are over these).
    pub runs: usize,
    /// Seconds per measurement.
    pub seconds: f64,
    /// Traffic generator used.
    pub generator: String,
    /// Per system and frame size.
    pub results: Vec<SystemResult>,
    /// mvdp/kernel ratios.
    pub ratios: Vec<Ratios>,
    /// Daemon memory, if measured.
    pub memory: Vec<MemoryResult>,
}
