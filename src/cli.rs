//! Command-line interface (clap derive structs only).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// mvdp: a userspace macvlan data plane (AF_XDP ingress, per-core MAC demux, veth/TAP endpoints).
#[derive(Debug, Parser)]
#[command(name = "mvdp", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node daemon until SIGTERM/SIGINT.
    Run {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a configuration and print what would be built; exits 78 on a bad config.
    Check {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Build a simulated LAN in network namespaces, run mvdp on it, send real traffic, clean up.
    Demo {
        /// Number of containers.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=50))]
        containers: u8,
        /// Endpoint kind for the containers.
        #[arg(long, value_enum, default_value_t = DemoKind::Veth)]
        kind: DemoKind,
        /// Leave the LAN and the daemon running until Ctrl-C.
        #[arg(long)]
        keep: bool,
    },
    /// Measure mvdp and the kernel's macvlan side by side on a namespace rig (as root).
    Bench(BenchArgs),
    /// Add, remove and list the running daemon's endpoints (over its control socket).
    Endpoint {
        /// What to do.
        #[command(subcommand)]
        action: EndpointAction,
        /// The daemon's control socket.
        #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Add, remove and list the running daemon's networks (over its control socket).
    Network {
        /// What to do.
        #[command(subcommand)]
        action: NetworkAction,
        /// The daemon's control socket.
        #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Serve Docker's network-driver protocol (`docker network create -d mvdp`) on top of the daemon.
    DockerPlugin {
        /// The plugin socket dockerd finds the driver `mvdp` by.
        #[arg(long, default_value = crate::docker::DEFAULT_LISTEN)]
        listen: PathBuf,
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Where the plugin remembers Docker's networks and endpoints.
        #[arg(long, default_value = crate::docker::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// A live view of the endpoints' traffic, busiest first (q quits).
    Top {
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Show the running daemon's state: parent, XDP, workers, endpoints, config.
    Status {
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The control socket's default path (`[control] socket`).
pub const DEFAULT_SOCKET: &str = crate::config::DEFAULT_CONTROL_SOCKET;

/// `mvdp endpoint …`.
#[derive(Debug, Subcommand)]
pub enum EndpointAction {
    /// Create an endpoint in a container's namespace, with the config's validation and addressing.
    Add {
        /// Its name (unique).
        #[arg(long)]
        name: String,
        /// The network it joins.
        #[arg(long)]
        network: String,
        /// The container's namespace, by name (/var/run/netns/NAME).
        #[arg(
            long,
            conflicts_with = "netns_path",
            required_unless_present = "netns_path"
        )]
        netns: Option<String>,
        /// The container's namespace, by path (e.g. /proc/PID/ns/net).
        #[arg(long)]
        netns_path: Option<String>,
        /// veth (default) or tap.
        #[arg(long)]
        kind: Option<String>,
        /// Its IPv4 address (default: the network's next free one).
        #[arg(long)]
        ip: Option<String>,
        /// Its IPv6 address on a dual-stack network (default: the next free one).
        #[arg(long)]
        ip6: Option<String>,
        /// Its MAC address (default: Docker's, from the address).
        #[arg(long)]
        mac: Option<String>,
        /// The interface name inside the container (default eth0).
        #[arg(long)]
        ifname: Option<String>,
        /// Leave the container's routes alone (default: a default route via the network's gateway).
        #[arg(long)]
        no_default_route: bool,
    },
    /// Remove an endpoint added at run time.
    Del {
        /// Its name.
        name: String,
    },
    /// List the endpoints with their counters.
    List,
}

/// `mvdp network …`.
// Parsed once per process: the size of `Add` next to `Del` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum NetworkAction {
    /// Create a network, with the config's validation (as `[[network]]`).
    Add {
        /// Its name (unique).
        #[arg(long)]
        name: String,
        /// Its subnet, e.g. 192.168.2.0/24.
        #[arg(long)]
        subnet: String,
        /// Its gateway (default: the subnet's first address).
        #[arg(long)]
        gateway: Option<String>,
        /// bridge (default), private, vepa, passthru or source.
        #[arg(long)]
        mode: Option<String>,
        /// 802.1Q VLAN id on the wire.
        #[arg(long)]
        vlan: Option<i64>,
        /// The pool for endpoints without an address.
        #[arg(long)]
        ip_range: Option<String>,
        /// The host's address on the network (a host shim).
        #[arg(long)]
        host_shim: Option<String>,
        /// An IPv6 subnet: makes the network dual stack.
        #[arg(long)]
        subnet6: Option<String>,
        /// Its IPv6 gateway (default: the subnet's ::1).
        #[arg(long)]
        gateway6: Option<String>,
        /// The IPv6 pool for endpoints without an IPv6 address.
        #[arg(long)]
        ip_range6: Option<String>,
        /// The host shim's IPv6 address (default: subnet6's last).
        #[arg(long)]
        host_shim6: Option<String>,
        /// The containers' MTU (default: the parent's; never above it).
        #[arg(long)]
        mtu: Option<i64>,
        /// snoop (default: group frames to members only) or flood.
        #[arg(long)]
        multicast: Option<String>,
    },
    /// Remove a network added at run time (it must have no endpoints).
    Del {
        /// Its name.
        name: String,
    },
    /// List the networks.
    List,
}

/// Options of `mvdp bench`; unset ones take the full (or `--quick`) defaults.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Every system, direction and part with short runs (about three minutes): checks that all works.
    #[arg(long)]
    pub quick: bool,
    /// Containers on the rig.
    #[arg(long)]
    pub containers: Option<usize>,
    /// Runs per figure (figures are medians over them; 0 measures memory only).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Seconds per maximum-load and fixed-rate measurement.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Frame sizes on the wire, with FCS (64 by default; 1518 is a full 1500-byte MTU frame).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Fixed offered rate for the CPU comparison, frames/s.
    #[arg(long)]
    pub fixed_rate: Option<f64>,
    /// Parts to run (all by default).
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<BenchPart>>,
    /// Systems to measure (all by default; ratios need `kernel`).
    #[arg(long, value_delimiter = ',')]
    pub systems: Option<Vec<BenchSystem>>,
    /// Seconds per TCP (iperf3) run.
    #[arg(long)]
    pub tcp_seconds: Option<u32>,
    /// The MTU of the rig's wire and parent, so of every container (1500 by
    /// default; 9000 measures jumbo frames, through the workers' AF_XDP
    /// multi-buffer chains where the fast path does not carry them).
    #[arg(long, value_parser = clap::value_parser!(u32).range(576..=9216))]
    pub mtu: Option<u32>,
    /// Seconds per latency (sockperf) run.
    #[arg(long)]
    pub latency_seconds: Option<u32>,
    /// Endpoint counts to report the daemon's memory for (e.g. 4,256; 0 to skip).
    #[arg(long, value_delimiter = ',')]
    pub memory: Option<Vec<usize>>,
    /// Directory for the JSON and PNG results.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The scale run instead: endpoints added over the control socket, memory
    /// and frames spread over all of them, at 4, 256 and 4096 endpoints.
    #[arg(long)]
    pub scale: bool,
    /// Endpoint counts of the scale run.
    #[arg(long, value_delimiter = ',', requires = "scale")]
    pub scale_sizes: Option<Vec<usize>>,
    /// Tiers of the scale run (both by default).
    #[arg(long, value_delimiter = ',', requires = "scale")]
    pub scale_fast_path: Option<Vec<OnOff>>,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// Parts of `mvdp bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchPart {
    /// Frames wire → containers from the NIC-like XDP generator.
    WireIn,
    /// Frames wire → containers from trafgen (skbs).
    WireInSkb,
    /// Frames containers → wire.
    WireOut,
    /// Frames container ↔ container.
    C2c,
    /// TCP bulk with iperf3, both ways.
    Tcp,
    /// UDP request/response latency with sockperf, idle and with a busy core.
    Latency,
}

/// Systems `mvdp bench` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchSystem {
    /// The kernel's macvlan, bridge mode (the baseline).
    Kernel,
    /// mvdp, veth endpoints, fast_path = "on".
    FastPath,
    /// mvdp, veth endpoints, fast_path = "off" (every frame through the workers).
    Workers,
    /// mvdp, TAP endpoints.
    Tap,
    /// mvdp, veth endpoints, fast_path = "off", poll = "busy" (latency only).
    BusyPoll,
}

/// Endpoint kinds the demo can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoKind {
    /// veth pairs (the default endpoint kind).
    Veth,
    /// TAP devices.
    Tap,
}
