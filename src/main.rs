//! The `mvdp` binary: parse the CLI, load and validate the config, start the daemon.

use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use mvdp::cli::{Cli, Command};
use mvdp::config::{Config, ConfigError};
use mvdp::control::daemon::Daemon;

/// sysexits.h EX_CONFIG: the configuration is invalid.
const EX_CONFIG: u8 = 78;

fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let config = Config::load(path)?;
    config.check_host()?;
    Ok(config)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(c) => {
                println!("{}: OK\n{}", config.display(), c.summary());
                Ok(())
            }
            Err(e) => {
                eprintln!("mvdp: {}: {e}", config.display());
                return ExitCode::from(EX_CONFIG);
            }
        },
        Command::Run { config } => match load(&config) {
            Ok(c) => run(&config, c),
            Err(e) => {
                eprintln!("mvdp: {}: {e}", config.display());
                return ExitCode::from(EX_CONFIG);
            }
        },
        Command::Demo {
            containers,
            kind,
            keep,
        } => mvdp::demo::run(usize::from(containers), kind, keep),
        Command::Bench(args) => bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mvdp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: mvdp::cli::BenchArgs) -> anyhow::Result<()> {
    use mvdp::bench::results::{Part, System};
    use mvdp::bench::{report, BenchOptions};
    use mvdp::cli::{BenchPart, BenchSystem};
    let mut o = if args.quick {
        BenchOptions::quick()
    } else {
        BenchOptions::full()
    };
    if let Some(v) = args.containers {
        o.containers = v.max(1);
    }
    if let Some(v) = args.runs {
        o.runs = v; // 0: memory figures only
    }
    if let Some(v) = args.seconds {
        o.seconds = v;
    }
    if let Some(v) = args.sizes {
        // Sizes are given as on the wire, with the 4-byte FCS the kernel adds.
        o.frame_lens = v
            .into_iter()
            .map(|s| s.saturating_sub(4).clamp(60, 1514))
            .collect();
        o.frame_lens.dedup();
    }
    if let Some(v) = args.fixed_rate {
        o.fixed_rate = v;
    }
    if let Some(v) = args.only {
        o.parts = Part::ALL
            .into_iter()
            .filter(|p| {
                v.contains(&match p {
                    Part::WireIn => BenchPart::WireIn,
                    Part::WireInSkb => BenchPart::WireInSkb,
                    Part::WireOut => BenchPart::WireOut,
                    Part::C2c => BenchPart::C2c,
                    Part::Tcp => BenchPart::Tcp,
                    Part::Latency => BenchPart::Latency,
                })
            })
            .collect();
    }
    if let Some(v) = args.systems {
        o.systems = System::ALL
            .into_iter()
            .filter(|s| {
                v.contains(&match s {
                    System::KernelMacvlan => BenchSystem::Kernel,
                    System::MvdpFastPath => BenchSystem::FastPath,
                    System::MvdpWorkers => BenchSystem::Workers,
                    System::MvdpTap => BenchSystem::Tap,
                    System::MvdpBusyPoll => BenchSystem::BusyPoll,
                })
            })
            .collect();
    }
    if let Some(v) = args.tcp_seconds {
        o.tcp_seconds = v.max(1);
    }
    if let Some(v) = args.latency_seconds {
        o.latency_seconds = v.max(1);
    }
    if let Some(v) = args.memory {
        o.memory_endpoints = v.into_iter().filter(|&n| n > 0).collect();
    }
    if let Some(v) = args.out {
        o.out = v;
    }
    o.command = std::env::args().collect::<Vec<_>>().join(" ");
    let results = mvdp::bench::run(&o)?;
    println!("{}", report::table(&results));
    for path in report::write(&results, &o.out)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn run(config_path: &std::path::Path, config: Config) -> anyhow::Result<()> {
    // Block SIGTERM/SIGINT/SIGHUP before any thread starts so every thread
    // inherits the mask and only the main thread takes them, synchronously.
    let signals = mvdp::control::signals::block_termination()?;
    let listen = config.metrics.listen;
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("metrics.listen: cannot listen on {listen}"))?;
    let mut daemon = Daemon::start(config, Some(listener))?;
    log::info!("running; metrics on http://{listen}/metrics; SIGHUP reloads endpoints, source lists and rate limits; SIGTERM or Ctrl-C stops");
    loop {
        match signals.wait(std::time::Duration::from_secs(1))? {
            Some("SIGHUP") => match load(config_path) {
                Ok(new) => match daemon.reload(&new) {
                    Ok(changed) => log::info!(
                        "SIGHUP: reloaded {}; updated {changed:?}",
                        config_path.display()
                    ),
                    Err(e) => log::error!("SIGHUP: {e:#}; keeping the running configuration"),
                },
                Err(e) => log::error!(
                    "SIGHUP: {}: {e}; keeping the running configuration",
                    config_path.display()
                ),
            },
            Some(sig) => {
                log::info!("signal {sig}: shutting down");
                break;
            }
            None => {}
        }
        daemon.reap_vanished();
    }
    daemon.shutdown()
}
