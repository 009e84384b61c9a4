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
/// sysexits.h EX_SOFTWARE: an internal error (a worker died).
const EX_SOFTWARE: u8 = 70;
/// sysexits.h EX_UNAVAILABLE: the parent interface vanished.
const EX_UNAVAILABLE: u8 = 69;

fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let config = Config::load(path)?;
    config.check_host()?;
    mvdp::control::service::check_mtus(&config)?;
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
        Command::Run { config } => match run(&config) {
            Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
                eprintln!("mvdp: {}: {e}", config.display());
                return ExitCode::from(EX_CONFIG);
            }
            other => other,
        },
        Command::Demo {
            containers,
            kind,
            keep,
        } => mvdp::demo::run(usize::from(containers), kind, keep),
        Command::Bench(args) => bench(args),
        Command::Endpoint {
            action,
            socket,
            json,
        } => return client_output(mvdp::control::client::endpoint(action, &socket, json)),
        Command::Network {
            action,
            socket,
            json,
        } => return client_output(mvdp::control::client::network(action, &socket, json)),
        Command::DockerPlugin {
            listen,
            socket,
            state_dir,
        } => {
            let opts = mvdp::docker::PluginOptions {
                listen,
                control: socket,
                state_dir,
            };
            return match mvdp::docker::serve(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mvdp docker-plugin: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Top { socket } => {
            return client_output(mvdp::control::top::run(&socket).map(|()| String::new()))
        }
        Command::Status { socket, json } => {
            return client_output(mvdp::control::client::status(&socket, json))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mvdp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a control-socket answer; exit 78 for a request the daemon found
/// invalid (the message names the key), 1 for any other failure.
fn client_output(result: Result<String, mvdp::control::api::ClientError>) -> ExitCode {
    use mvdp::control::api::{ClientError, ErrorCode};
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mvdp: {e}");
            match e {
                ClientError::Refused(a)
                    if matches!(a.code, ErrorCode::Invalid | ErrorCode::Malformed) =>
                {
                    ExitCode::from(EX_CONFIG)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn bench(args: mvdp::cli::BenchArgs) -> anyhow::Result<()> {
    use mvdp::bench::results::{Part, System};
    use mvdp::bench::{report, BenchOptions};
    use mvdp::cli::{BenchPart, BenchSystem};
    if args.scale {
        return bench_scale(args);
    }
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
    if let Some(v) = args.mtu {
        o.mtu = v;
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

fn bench_scale(args: mvdp::cli::BenchArgs) -> anyhow::Result<()> {
    use mvdp::bench::scale::{self, ScaleOptions};
    let mut o = ScaleOptions::full();
    if let Some(v) = args.scale_sizes {
        o.sizes = v.into_iter().filter(|&n| n > 0).collect();
    }
    if let Some(v) = args.scale_fast_path {
        o.fast_path = [true, false]
            .into_iter()
            .filter(|&on| {
                v.contains(&if on {
                    mvdp::cli::OnOff::On
                } else {
                    mvdp::cli::OnOff::Off
                })
            })
            .collect();
    }
    if let Some(v) = args.seconds {
        o.seconds = v;
    }
    if let Some(v) = args.fixed_rate {
        o.fixed_rate = v;
    }
    if let Some(v) = args.out {
        o.out = v;
    }
    o.command = std::env::args().collect::<Vec<_>>().join(" ");
    let results = scale::run(&o)?;
    println!("{}", scale::table(&results));
    for path in scale::write(&results, &o.out)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn run(config_path: &std::path::Path) -> anyhow::Result<()> {
    use mvdp::control::api::{self, ControlServer};
    use mvdp::control::service::Service;
    use std::time::{Duration, Instant};
    // Block SIGTERM/SIGINT/SIGHUP before any thread starts so every thread
    // inherits the mask and only the main thread takes them, synchronously.
    let signals = mvdp::control::signals::block_termination()?;
    let (mut service, config) = Service::load(config_path)?;
    // Before anything is built: a second daemon on the same socket stops here.
    let (calls_tx, calls) = api::channel();
    let control = ControlServer::bind(&config.control.socket, calls_tx)?;
    let listen = config.metrics.listen;
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("metrics.listen: cannot listen on {listen}"))?;
    let socket = config.control.socket.clone();
    let mut daemon = Daemon::start(config, Some(listener))?;
    log::info!(
        "running; metrics on http://{listen}/metrics; control socket {}; SIGHUP reloads the config; SIGTERM or Ctrl-C stops",
        socket.display()
    );
    let mut last_reap = Instant::now();
    loop {
        match signals.wait(Duration::from_millis(50))? {
            Some("SIGHUP") => match service.reload(&mut daemon) {
                Ok(done) => log::info!("SIGHUP: reloaded {}; done {done:?}", config_path.display()),
                Err(e) => log::error!(
                    "SIGHUP: {e:#}; what could be applied was, the rest keeps running as it was"
                ),
            },
            Some(sig) => {
                log::info!("signal {sig}: shutting down");
                break;
            }
            None => {}
        }
        for call in calls.try_iter() {
            service.take_call(&mut daemon, call);
        }
        daemon.apply_dhcp_events();
        service.poll_leases(&mut daemon);
        // A worker that died (a panic: a bug) leaves its queue's frames with
        // nobody to read them. mvdp exits at once without tearing down, as
        // if killed: the kernel detaches its programs with their link fds
        // (the host keeps its network), the endpoints stay, and the restart
        // its supervisor makes takes them over (`Restart=on-failure`).
        let dead = daemon.dead_workers();
        if !dead.is_empty() {
            log::error!(
                "worker for queue {} died (see the panic above); exiting with status {EX_SOFTWARE} so the supervisor restarts mvdp, which takes over the endpoints",
                dead.join(", ")
            );
            std::process::exit(i32::from(EX_SOFTWARE));
        }
        if last_reap.elapsed() >= Duration::from_secs(1) {
            last_reap = Instant::now();
            // The parent gone (a NIC unplugged, a driver reloaded, a veth
            // deleted) took the sockets and programs with it: nothing is
            // served any more. As for a dead worker, mvdp exits at once
            // without tearing down, so that the endpoints stay and the
            // start after the parent is back takes them over.
            if daemon.parent_vanished() {
                log::error!(
                    "parent.interface: {} vanished (deleted, renamed or re-created); exiting with status {EX_UNAVAILABLE} without tearing down: the endpoints stay for the next start to take over once it is back",
                    daemon.parent()
                );
                std::process::exit(i32::from(EX_UNAVAILABLE));
            }
            let gone = daemon.reap_vanished();
            service.forget(&gone);
        }
    }
    drop(control);
    Ok(daemon.shutdown()?)
}
