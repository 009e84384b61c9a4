//! The figures `mvdp bench` produces: one run of the side-by-side comparison.

use serde::Serialize;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// The kernel's macvlan, mode bridge, one macvlan per container namespace (the baseline).
    KernelMacvlan,
    /// mvdp, veth endpoints, `[dataplane] fast_path = "on"`.
    MvdpFastPath,
    /// mvdp, veth endpoints, `fast_path = "off"`: every frame through the workers.
    MvdpWorkers,
    /// mvdp, TAP endpoints (always through the workers).
    MvdpTap,
    /// mvdp, veth endpoints, `fast_path = "off"`, `[workers] poll = "busy"`
    /// (measured for latency only: it spins a core by design).
    MvdpBusyPoll,
}

impl System {
    /// All systems, baseline first.
    pub const ALL: [System; 5] = [
        System::KernelMacvlan,
        System::MvdpFastPath,
        System::MvdpWorkers,
        System::MvdpTap,
        System::MvdpBusyPoll,
    ];

    /// A short human label.
    pub fn label(self) -> &'static str {
        match self {
            System::KernelMacvlan => "kernel macvlan",
            System::MvdpFastPath => "mvdp fast path",
            System::MvdpWorkers => "mvdp workers",
            System::MvdpTap => "mvdp tap",
            System::MvdpBusyPoll => "mvdp busy poll",
        }
    }

    /// Whether the system takes part in `part` (busy polling: latency only).
    pub fn runs(self, part: Part) -> bool {
        self != System::MvdpBusyPoll || part == Part::Latency
    }
}

/// A part of the bench, selectable with `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Frames from the wire to the containers, NIC-like XDP generator.
    WireIn,
    /// Frames from the wire to the containers, trafgen (skbs).
    WireInSkb,
    /// Frames from the containers to the wire.
    WireOut,
    /// Frames between containers of one bridge network.
    C2c,
    /// TCP bulk with iperf3.
    Tcp,
    /// UDP request/response latency with sockperf.
    Latency,
}

impl Part {
    /// Every part, in the order they run.
    pub const ALL: [Part; 6] = [
        Part::WireIn,
        Part::WireInSkb,
        Part::WireOut,
        Part::C2c,
        Part::Tcp,
        Part::Latency,
    ];

    /// The frame direction this part measures, if it is a frame part.
    pub fn direction(self) -> Option<Direction> {
        match self {
            Part::WireIn => Some(Direction::WireToContainersNic),
            Part::WireInSkb => Some(Direction::WireToContainersSkb),
            Part::WireOut => Some(Direction::ContainersToWire),
            Part::C2c => Some(Direction::ContainerToContainer),
            Part::Tcp | Part::Latency => None,
        }
    }
}

/// Where frames go, and which generator sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Wire → containers, frames entering the parent as XDP frames (NIC-like).
    WireToContainersNic,
    /// Wire → containers, frames entering the parent as skbs (trafgen, AF_PACKET).
    WireToContainersSkb,
    /// Every container → the wire host (trafgen / AF_PACKET in each container).
    ContainersToWire,
    /// Container pairs of one bridge network, both ways (c1 ↔ c2, c3 ↔ c4, ...).
    ContainerToContainer,
}

impl Direction {
    /// Every direction, in table order.
    pub const ALL: [Direction; 4] = [
        Direction::WireToContainersNic,
        Direction::WireToContainersSkb,
        Direction::ContainersToWire,
        Direction::ContainerToContainer,
    ];

    /// A human label.
    pub fn label(self) -> &'static str {
        match self {
            Direction::WireToContainersNic => "wire → containers, NIC-like generator (XDP frames)",
            Direction::WireToContainersSkb => "wire → containers, trafgen (skbs)",
            Direction::ContainersToWire => "containers → wire",
            Direction::ContainerToContainer => "container ↔ container (same bridge network)",
        }
    }

    /// A short label for chart captions and ratio rows.
    pub fn short(self) -> &'static str {
        match self {
            Direction::WireToContainersNic => "wire → c (NIC-like)",
            Direction::WireToContainersSkb => "wire → c (trafgen)",
            Direction::ContainersToWire => "c → wire",
            Direction::ContainerToContainer => "c ↔ c",
        }
    }
}

/// Medians (and the raw per-run samples) of one system, direction and frame size.
#[derive(Debug, Clone, Serialize)]
pub struct FrameResult {
    /// Which system.
    pub system: System,
    /// Which way the frames go, and the generator.
    pub direction: Direction,
    /// Frame size on the wire without FCS (60 for "64-byte" frames, 1514).
    pub frame_len: usize,
    /// Maximum offered load (the generator unthrottled): frames the sending
    /// interfaces took, median over runs.
    pub max_offered_frames: u64,
    /// Frames the sending interfaces refused (the next ring was full), median.
    pub max_refused_frames: u64,
    /// Frames delivered to the receiving interfaces (their rx counters), median.
    pub max_delivered_frames: u64,
    /// Loss at maximum load: 1 - delivered/offered (refused frames are
    /// not offered, see `max_refused_frames`), median.
    pub max_loss_ratio: f64,
    /// Offered frames/s at maximum load, median.
    pub max_offered_fps: f64,
    /// Delivered frames/s at maximum load, median.
    pub max_delivered_fps: f64,
    /// The highest paced rate (frames/s) with nothing refused or lost, median.
    pub zero_loss_fps: f64,
    /// The fixed offered rate (frames/s) at which CPU cost is compared (same for every system).
    pub fixed_rate_fps: f64,
    /// Delivered frames at the fixed rate, median.
    pub fixed_delivered_frames: u64,
    /// Loss at the fixed rate, median (should be 0 for the CPU figure to be fair).
    pub fixed_loss_ratio: f64,
    /// CPU time per delivered frame at the fixed rate, all cores, nanoseconds, median.
    pub cpu_ns_per_frame: f64,
    /// Per-run samples of delivered frames/s at maximum load.
    pub samples_max_delivered_fps: Vec<f64>,
    /// Per-run samples of the zero-loss rate.
    pub samples_zero_loss_fps: Vec<f64>,
    /// Per-run samples of CPU ns per delivered frame at the fixed rate.
    pub samples_cpu_ns_per_frame: Vec<f64>,
}

/// Which way a TCP stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpDirection {
    /// The wire host sends to a container.
    WireToContainer,
    /// A container sends to the wire host.
    ContainerToWire,
}

impl TcpDirection {
    /// Both directions.
    pub const ALL: [TcpDirection; 2] =
        [TcpDirection::WireToContainer, TcpDirection::ContainerToWire];

    /// A human label.
    pub fn label(self) -> &'static str {
        match self {
            TcpDirection::WireToContainer => "wire → container",
            TcpDirection::ContainerToWire => "container → wire",
        }
    }
}

/// TCP bulk (iperf3, one stream) of one system in one direction.
#[derive(Debug, Clone, Serialize)]
pub struct TcpResult {
    /// Which system.
    pub system: System,
    /// Which way.
    pub direction: TcpDirection,
    /// Receiver goodput, Gbit/s, median over runs.
    pub gbps: f64,
    /// Sender retransmissions, median over runs.
    pub retransmits: u64,
    /// Per-run samples of Gbit/s.
    pub samples_gbps: Vec<f64>,
}

/// What else the machine is doing while latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    /// Nothing else.
    Idle,
    /// A busy loop pinned to the data plane's worker core.
    BusyCore,
}

impl Load {
    /// Both loads.
    pub const ALL: [Load; 2] = [Load::Idle, Load::BusyCore];

    /// A human label.
    pub fn label(self) -> &'static str {
        match self {
            Load::Idle => "idle",
            Load::BusyCore => "busy core",
        }
    }
}

/// UDP request/response round trips (sockperf ping-pong, wire host → a container).
#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    /// Which system.
    pub system: System,
    /// Idle, or with the worker's core busy.
    pub load: Load,
    /// Median round trip, µs (median over runs).
    pub p50_us: f64,
    /// 99th percentile, µs (median over runs).
    pub p99_us: f64,
    /// 99.9th percentile, µs (median over runs).
    pub p999_us: f64,
    /// Per-run samples of the median.
    pub samples_p50_us: Vec<f64>,
    /// Per-run samples of the 99th percentile.
    pub samples_p99_us: Vec<f64>,
    /// Per-run samples of the 99.9th percentile.
    pub samples_p999_us: Vec<f64>,
}

/// A goal for a ratio against the kernel's macvlan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Goal {
    /// "≥" (higher is better) or "≤" (lower is better).
    pub op: &'static str,
    /// The bound.
    pub bound: f64,
}

impl Goal {
    /// At least `bound`.
    pub const fn at_least(bound: f64) -> Goal {
        Goal { op: "≥", bound }
    }

    /// At most `bound`.
    pub const fn at_most(bound: f64) -> Goal {
        Goal { op: "≤", bound }
    }

    /// Whether `v` meets the goal (`None` when `v` is not a number).
    pub fn met(self, v: f64) -> Option<bool> {
        if !v.is_finite() {
            return None;
        }
        Some(if self.op == "≥" {
            v >= self.bound
        } else {
            v <= self.bound
        })
    }
}

/// One figure of an mvdp system against the kernel's macvlan: the median of
/// the per-run ratios (each run compares with the kernel measured in that run).
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// mvdp system.
    pub system: System,
    /// Machine-readable name, e.g. `wire_to_containers_nic/60/zero_loss_fps`,
    /// `tcp/container_to_wire/gbps`, `latency/busy_core/p99_us`.
    pub key: String,
    /// The table row it belongs to, e.g. "c → wire, 64 B".
    pub row: String,
    /// The figure, e.g. "zero-loss".
    pub figure: String,
    /// Median of the per-run ratios (NaN when the kernel's figure was 0).
    pub ratio: f64,
    /// The per-run ratios.
    pub samples: Vec<f64>,
    /// The goal from issue 7, where there is one.
    pub goal: Option<Goal>,
    /// Whether the goal is met (`None`: no goal, or no number).
    pub met: Option<bool>,
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
    /// Seconds per maximum-load and fixed-rate measurement.
    pub seconds: f64,
    /// Seconds per TCP run.
    pub tcp_seconds: u32,
    /// Seconds per latency run.
    pub latency_seconds: u32,
    /// The MTU of the wire, the parent and every container.
    pub mtu: u32,
    /// The rig: how the wire is set up (NIC-like).
    pub rig: String,
    /// The generators and how offered frames are counted.
    pub generator: String,
    /// Where each process runs.
    pub placement: String,
    /// How CPU time per frame is counted.
    pub cpu_accounting: String,
    /// Frame figures per system, direction and frame size.
    pub frames: Vec<FrameResult>,
    /// TCP bulk per system and direction.
    pub tcp: Vec<TcpResult>,
    /// Latency per system and load.
    pub latency: Vec<LatencyResult>,
    /// mvdp/kernel ratios, with the goals.
    pub ratios: Vec<Ratio>,
    /// Daemon memory, if measured.
    pub memory: Vec<MemoryResult>,
}
