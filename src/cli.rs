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
}

/// Endpoint kinds the demo can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoKind {
    /// veth pairs (the default endpoint kind).
    Veth,
    /// TAP devices.
    Tap,
}
