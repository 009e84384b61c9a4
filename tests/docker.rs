//! Docker for real: Debian's dockerd (20.10) on a private socket and data
//! root, `mvdp docker-plugin` as its network driver `mvdp`, and the same
//! scenario against Docker's built-in `macvlan` driver on the same rig.
//!
//! dockerd runs in the rig's host network namespace, beside mvdp (the driver makes
//! the container's interface there and dockerd moves it into the
//! container), with iptables, IP forwarding, masquerading and the default
//! bridge off. The image is Debian's busybox-static, imported (no registry).

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    endpoint_list, list_links, mvdp_ctl, ping, require_command, require_privileges, tier, unique,
    wait_until, Daemon, Rig, PARENT_IF, WIRE_IP,
};

/// Debian's client; a newer one elsewhere on PATH would speak another API version.
const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const BUSYBOX: &str = "/bin/busybox";
/// Where dockerd looks for the driver `mvdp`.
const PLUGIN_SOCKET: &str = "/run/docker/plugins/mvdp.sock";
const IMAGE: &str = "mvdp-busybox:test";
const A1: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 21);
const A2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 22);
const A2_MAC: &str = "02:00:00:00:00:22";
const TRANSFER: usize = 4 << 20;

/// dockerd, in the rig's host namespace, with everything under `dir`.
struct Dockerd {
    child: Option<Child>,
    dir: PathBuf,
}

impl Dockerd {
    fn start(rig: &Rig, dir: &Path) -> Dockerd {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("dockerd.log"))
            .expect("dockerd log");
        let d = |sub: &str| dir.join(sub).display().to_string();
        // Its own (empty) daemon.json: none of the machine's settings apply.
        std::fs::write(dir.join("daemon.json"), "{}").expect("daemon.json");
        // nsenter, not `ip netns exec`: dockerd needs the machine's own
        // mounts (`ip netns exec` remounts /sys, hiding the cgroup mounts).
        let child = Command::new("nsenter")
            .arg(format!("--net={}", rig.host.path().display()))
            .arg(DOCKERD)
            .args(["--data-root", &d("data"), "--exec-root", &d("exec")])
            .args([
                "--pidfile",
                &d("docker.pid"),
                "--config-file",
                &d("daemon.json"),
            ])
            .arg(format!("--host=unix://{}", d("docker.sock")))
            .args(["--iptables=false", "--ip-forward=false", "--ip-masq=false"])
            .args(["--bridge=none", "--shutdown-timeout=2"])
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .args(["--storage-driver", "overlay2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let dockerd = Dockerd {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        let up = wait_until(Duration::from_secs(60), || {
            dockerd
                .docker(&["version", "--format", "{{.Server.Version}}"])
                .status
                .success()
        });
        assert!(up, "dockerd did not come up:\n{}", dockerd.log());
        dockerd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.join("docker.sock").display()),
            )
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// `docker ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `docker ARGS`, which must fail; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            !out.status.success(),
            "docker {} succeeded; it should not have",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// An image with busybox and its applets, imported from a tarball.
    fn import_busybox(&self) {
        let root = self.dir.join("image");
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).expect("image dir");
        std::fs::create_dir_all(root.join("tmp")).expect("image /tmp");
        std::fs::copy(BUSYBOX, bin.join("busybox")).expect("copy busybox");
        for applet in ["sh", "sleep", "cat", "ip", "ping", "nc", "wc", "sha256sum"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
        }
        let tar = self.dir.join("image.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(status.success(), "tar of the image failed");
        self.ok(&["import", &tar.display().to_string(), IMAGE]);
    }

    /// SIGTERM, and a wait for the exit (SIGKILL after 30 s).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "dockerd did not stop within 30 s of SIGTERM\n{}",
            self.log()
        );
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                self.docker(&["rm", "-f", id]);
            }
            self.docker(&["network", "prune", "-f"]);
            if !std::thread::panicking() {
                self.stop();
            } else if let Some(mut child) = self.child.take() {
                // SAFETY: as in `stop`.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                if !wait_until(Duration::from_secs(30), || {
                    matches!(child.try_wait(), Ok(Some(_)))
                }) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

/// What dockerd and the plugin write outside the test's directory whatever
/// their flags: dockerd its identity key, the plugin the plugins directory.
const OUTSIDE: [&str; 3] = ["/etc/docker/key.json", "/run/docker/plugins", "/run/docker"];

/// The test's directory (dockerd's data and exec roots, logs, the image),
/// removed at the end with what of [`OUTSIDE`] the test made; declared
/// before dockerd, so dockerd stops first.
struct Scratch(PathBuf, Vec<&'static str>);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(unique("mvdp-docker-"));
        std::fs::create_dir_all(&dir).expect("test dir");
        let made = OUTSIDE
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        Scratch(dir, made)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for path in &self.1 {
            // Directories only if empty: never anything the test did not make.
            let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir(path));
        }
        // containerd may still be writing its last state files for a moment.
        let gone = wait_until(Duration::from_secs(10), || {
            std::fs::remove_dir_all(&self.0).is_ok() || !self.0.exists()
        });
        if !gone {
            eprintln!("could not remove {}", self.0.display());
        }
    }
}

/// `mvdp docker-plugin` on the well-known socket.
struct Plugin {
    child: Option<Child>,
    log: PathBuf,
}

impl Plugin {
    fn start(rig: &Rig, dir: &Path) -> Plugin {
        let log = dir.join("plugin.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("plugin log");
        let child = Command::new(common::MVDP)
            .arg("docker-plugin")
            .arg("--socket")
            .arg(&rig.control_socket)
            .arg("--state-dir")
            .arg(dir.join("plugin-state"))
            .args(["--listen", PLUGIN_SOCKET])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log fd"))
            .stderr(file)
            .spawn()
            .expect("spawn mvdp docker-plugin");
        let plugin = Plugin {
            child: Some(child),
            log,
        };
        let up = wait_until(Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(PLUGIN_SOCKET).is_ok()
        });
        assert!(up, "the plugin did not listen:\n{}", plugin.log());
        plugin
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; the plugin must exit 0 and take its socket with it.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().expect("wait for the plugin");
        let left = Path::new(PLUGIN_SOCKET).exists();
        if left {
            let _ = std::fs::remove_file(PLUGIN_SOCKET);
        }
        assert!(status.success(), "plugin exit: {status}\n{}", self.log());
        assert!(!left, "the plugin left {PLUGIN_SOCKET} behind");
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // A stopped plugin's socket may be its successor's by now.
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in `stop`.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            let _ = std::fs::remove_file(PLUGIN_SOCKET);
        }
    }
}

/// `text` split at spaces: a command line without quoting.
fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// `docker run -d --name NAME --network NETWORK --ip IP [EXTRA] IMAGE sleep 3600`.
fn run_container(d: &Dockerd, name: &str, network: &str, ip: Ipv4Addr, extra: &[&str]) {
    let ip = ip.to_string();
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "--ip",
        &ip,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "sleep", "3600"]);
    d.ok(&args);
}

/// What one driver did with the same traffic.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// Each container has the address and MAC asked for.
    addressed: bool,
    /// wire → a1, wire → a2, a1 → wire, a1 → a2, a2 → a1 pings answered.
    pings: [bool; 5],
    /// Of 200 pings from the wire to a1, how many a1 received (≥ 200).
    a1_got_all: bool,
    /// ... and whether a2 received them too (it must not).
    a2_saw_a1_unicast: bool,
    /// 4 MiB from the wire to a1, byte-exact.
    tcp_exact: bool,
}

fn rx_packets(d: &Dockerd, container: &str) -> u64 {
    d.ok(&[
        "exec",
        container,
        "cat",
        "/sys/class/net/eth0/statistics/rx_packets",
    ])
    .parse()
    .expect("rx_packets is a number")
}

fn exec_ping(d: &Dockerd, container: &str, ip: Ipv4Addr) -> bool {
    d.docker(&[
        "exec",
        container,
        "ping",
        "-c",
        "3",
        "-W",
        "2",
        &ip.to_string(),
    ])
    .status
    .success()
}

/// Sends `TRANSFER` pseudo-random bytes from the wire to `nc -l` in
/// `container`; true if what arrived has the same length and SHA-256.
fn tcp_from_wire(rig: &Rig, d: &Dockerd, dir: &Path, container: &str, ip: Ipv4Addr) -> bool {
    let mut data = vec![0u8; TRANSFER];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let file = dir.join("payload");
    std::fs::write(&file, &data).expect("write payload");
    let sha = |out: &str| out.split_whitespace().next().unwrap_or("").to_string();
    let expected = sha(&String::from_utf8_lossy(
        &Command::new("sha256sum")
            .arg(&file)
            .output()
            .expect("sha256sum")
            .stdout,
    ));
    d.ok(&[
        "exec",
        "-d",
        container,
        "sh",
        "-c",
        "nc -l -p 5001 > /tmp/recv",
    ]);
    let sent = rig.wire.in_ns(|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect_timeout(&(ip, 5001).into(), Duration::from_secs(2)) {
                Ok(mut s) => {
                    let ok = s.write_all(&data).is_ok();
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    return ok;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    eprintln!("connect to {ip}:5001 from the wire: {e}");
                    return false;
                }
            }
        }
    });
    if !sent {
        return false;
    }
    let size = TRANSFER.to_string();
    let arrived = wait_until(Duration::from_secs(30), || {
        d.docker(&["exec", container, "sh", "-c", "wc -c < /tmp/recv"])
            .stdout
            .starts_with(size.as_bytes())
    });
    arrived && sha(&d.ok(&["exec", container, "sha256sum", "/tmp/recv"])) == expected
}

/// Two containers on `network`: addresses, pings, where unicast arrives, TCP.
fn scenario(rig: &Rig, d: &Dockerd, dir: &Path, network: &str) -> Seen {
    let a1 = format!("{network}-a1");
    let a2 = format!("{network}-a2");
    run_container(d, &a1, network, A1, &[]);
    run_container(d, &a2, network, A2, &["--mac-address", A2_MAC]);
    let mac = |c: &str| d.ok(&["exec", c, "cat", "/sys/class/net/eth0/address"]);
    let addr = |c: &str| d.ok(&["exec", c, "ip", "-o", "-4", "addr", "show", "eth0"]);
    let addressed = mac(&a1) == "02:42:0a:4d:00:15"
        && mac(&a2) == A2_MAC
        && addr(&a1).contains(&format!("{A1}/24"))
        && addr(&a2).contains(&format!("{A2}/24"));
    if !addressed {
        eprintln!(
            "{network}: a1 {} {}, a2 {} {}",
            mac(&a1),
            addr(&a1),
            mac(&a2),
            addr(&a2)
        );
    }
    let pings = [
        ping(&rig.wire, A1, 3),
        ping(&rig.wire, A2, 3),
        exec_ping(d, &a1, WIRE_IP),
        exec_ping(d, &a1, A2),
        exec_ping(d, &a2, A1),
    ];
    let (before1, before2) = (rx_packets(d, &a1), rx_packets(d, &a2));
    let out = rig.wire.exec(&[
        "ping",
        "-q",
        "-c",
        "200",
        "-i",
        "0.002",
        "-W",
        "1",
        &A1.to_string(),
    ]);
    let got1 = rx_packets(d, &a1) - before1;
    let got2 = rx_packets(d, &a2) - before2;
    let answered = String::from_utf8_lossy(&out.stdout).contains("200 received");
    eprintln!(
        "{network}: 200 pings wire -> a1: a1 received {got1} frames, a2 {got2} ({})",
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .replace('\n', " ")
    );
    let tcp_exact = tcp_from_wire(rig, d, dir, &a1, A1);
    Seen {
        addressed,
        pings,
        a1_got_all: answered && got1 >= 200,
        // A broadcast (ARP) or two may arrive meanwhile, not the pings.
        a2_saw_a1_unicast: got2 >= 100,
        tcp_exact,
    }
}

/// Links of the host namespace that are not the rig's own or mvdp's punt device.
fn stray_links(rig: &Rig) -> Vec<String> {
    list_links(&rig.host)
        .into_iter()
        .filter(|l| l != "lo" && l != PARENT_IF && !l.starts_with("mvdp-punt"))
        .collect()
}

fn config(rig: &Rig) -> String {
    format!(
        "[parent]\ninterface = \"{PARENT_IF}\"\n\n[dataplane]\nfast_path = \"{}\"\n\n\
         [metrics]\nlisten = \"{}\"\n\n[control]\nsocket = \"{}\"\n",
        tier(),
        rig.metrics_addr,
        rig.control_socket.display()
    )
}

#[test]
fn docker_driver_matches_the_builtin_macvlan() {
    if !require_privileges()
        || !require_command("dockerd", "docker.io")
        || !require_command("busybox", "busybox-static")
    {
        return;
    }
    assert!(
        std::os::unix::net::UnixStream::connect(PLUGIN_SOCKET).is_err(),
        "a plugin answers on {PLUGIN_SOCKET}: another mvdp docker-plugin runs; this test needs the well-known socket"
    );
    let _ = std::fs::remove_file(PLUGIN_SOCKET);
    let rig = Rig::new(0, 1);
    let scratch = Scratch::new();
    let dir = scratch.0.clone();
    let mut daemon = Daemon::start(&rig, &config(&rig));
    daemon.wait_ready(Duration::from_secs(30));
    let mut plugin = Plugin::start(&rig, &dir);
    let mut docker = Dockerd::start(&rig, &dir);
    docker.import_busybox();

    // Options mvdp does not have are refused, naming them.
    let err = docker.fails(&words(
        "network create -d mvdp --subnet 10.77.0.0/24 -o parent=p0 -o ipvlan_mode=l3 bad",
    ));
    assert!(err.contains("-o ipvlan_mode"), "{err}");
    let err = docker.fails(&words(
        "network create -d mvdp --subnet 10.77.0.0/24 -o parent=eth9 bad",
    ));
    assert!(err.contains("parent=eth9"), "{err}");

    docker.ok(&words(
        "network create -d mvdp --subnet 10.77.0.0/24 --gateway 10.77.0.1 -o parent=p0 lan",
    ));
    let ours = scenario(&rig, &docker, &dir, "lan");
    assert_eq!(endpoint_list(&rig).len(), 2, "two endpoints while two run");

    // mvdp restarts under running containers: they keep their interfaces.
    assert!(daemon.stop().success(), "{}", daemon.log());
    let still = docker.ok(&["exec", "lan-a1", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(still, "02:42:0a:4d:00:15", "a1's eth0 across mvdp's stop");
    daemon = Daemon::start(&rig, &config(&rig));
    daemon.wait_ready(Duration::from_secs(30));
    assert_eq!(endpoint_list(&rig).len(), 2, "both endpoints back");
    assert!(ping(&rig.wire, A1, 3), "wire -> a1 after mvdp restarted");
    assert!(
        exec_ping(&docker, "lan-a2", A1),
        "a2 -> a1 after mvdp restarted"
    );

    // `docker network connect`: a second network, on VLAN 7, as eth1.
    docker.ok(&words(
        "network create -d mvdp --subnet 10.78.0.0/24 -o parent=p0.7 lan7",
    ));
    docker.ok(&["network", "connect", "--ip", "10.78.0.30", "lan7", "lan-a1"]);
    let eth1 = docker.ok(&["exec", "lan-a1", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(eth1.contains("10.78.0.30/24"), "eth1: {eth1}");
    assert_eq!(
        endpoint_list(&rig).len(),
        3,
        "eth1 is an endpoint of its own"
    );
    docker.ok(&["network", "disconnect", "lan7", "lan-a1"]);
    assert_eq!(
        endpoint_list(&rig).len(),
        2,
        "disconnect removed eth1's endpoint"
    );
    docker.ok(&["network", "rm", "lan7"]);

    // A dual-stack network (`--ipv6`): Docker's IPv6 subnet, addresses and
    // gateway reach mvdp, and the containers talk over IPv6 through it.
    docker.ok(&words(
        "network create -d mvdp --ipv6 --subnet 10.79.0.0/24 --subnet fd00:79::/64 -o parent=p0.8 lan8",
    ));
    for (c, ip, ip6) in [
        ("lan-a1", "10.79.0.31", "fd00:79::31"),
        ("lan-a2", "10.79.0.32", "fd00:79::32"),
    ] {
        docker.ok(&["network", "connect", "--ip", ip, "--ip6", ip6, "lan8", c]);
    }
    // (Docker numbers interfaces on: this one is not eth1 again.)
    let addrs = docker.ok(&["exec", "lan-a1", "ip", "-o", "-6", "addr"]);
    assert!(addrs.contains("fd00:79::31/64"), "a1's addresses: {addrs}");
    let listed = endpoint_list(&rig);
    assert!(
        listed.iter().any(|e| e["ip6"] == "fd00:79::32"),
        "a2's IPv6 address is not mvdp's: {listed:?}"
    );
    let pinged = docker.docker(&[
        "exec",
        "lan-a1",
        "ping",
        "-6",
        "-c",
        "3",
        "-W",
        "2",
        "fd00:79::32",
    ]);
    assert!(
        pinged.status.success(),
        "a1 -> a2 over IPv6: {}",
        String::from_utf8_lossy(&pinged.stdout)
    );
    for c in ["lan-a1", "lan-a2"] {
        docker.ok(&["network", "disconnect", "lan8", c]);
    }
    docker.ok(&["network", "rm", "lan8"]);

    // The plugin restarts: Docker's network is still usable.
    plugin.stop();
    plugin = Plugin::start(&rig, &dir);
    let a3 = Ipv4Addr::new(10, 77, 0, 23);
    run_container(&docker, "a3", "lan", a3, &[]);
    assert!(ping(&rig.wire, a3, 3), "a3 after a plugin restart");

    // dockerd restarts (its containers stop): a new container still works.
    docker.stop();
    docker = Dockerd::start(&rig, &dir);
    let a4 = Ipv4Addr::new(10, 77, 0, 24);
    run_container(&docker, "a4", "lan", a4, &[]);
    assert!(ping(&rig.wire, a4, 3), "a4 after a dockerd restart");
    let names = |l: Vec<serde_json::Value>| -> Vec<String> {
        l.iter()
            .map(|e| e["ip"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        names(endpoint_list(&rig)),
        vec!["10.77.0.24".to_string()],
        "only a4's endpoint after dockerd stopped the others"
    );

    // Removal leaves nothing behind: no endpoint, FDB entry or interface.
    for c in ["lan-a1", "lan-a2", "a3", "a4"] {
        docker.ok(&["rm", "-f", c]);
    }
    docker.ok(&["network", "rm", "lan"]);
    let (code, nets, err) = mvdp_ctl(&rig, &["network", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(nets.trim(), "[]", "networks left in mvdp");
    let state = std::fs::read_to_string(dir.join("plugin-state/docker-plugin.json"))
        .expect("the plugin's state file");
    let state: serde_json::Value = serde_json::from_str(&state).expect("state JSON");
    assert_eq!(
        (
            state["networks"].as_object().map(|m| m.len()),
            state["endpoints"].as_object().map(|m| m.len())
        ),
        (Some(0), Some(0)),
        "the plugin still remembers: {state}"
    );
    assert!(
        endpoint_list(&rig).is_empty(),
        "endpoints left: {:?}",
        endpoint_list(&rig)
    );
    let fdb_empty = wait_until(Duration::from_secs(5), || {
        daemon.metric("mvdp_fdb_entries") == Some(0.0)
    });
    assert!(
        fdb_empty,
        "FDB entries left: {:?}",
        daemon.metric("mvdp_fdb_entries")
    );
    assert!(
        stray_links(&rig).is_empty(),
        "links left: {:?}",
        stray_links(&rig)
    );
    plugin.stop();
    daemon.stop();

    // The same with Docker's own macvlan driver on the same parent.
    docker.ok(&words("network create -d macvlan --subnet 10.77.0.0/24 --gateway 10.77.0.1 -o parent=p0 -o macvlan_mode=bridge klan"));
    let kernel = scenario(&rig, &docker, &dir, "klan");
    for c in ["klan-a1", "klan-a2"] {
        docker.ok(&["rm", "-f", c]);
    }
    docker.ok(&["network", "rm", "klan"]);
    docker.stop();
    eprintln!("mvdp: {ours:?}\nkernel macvlan: {kernel:?}");
    assert_eq!(ours, kernel, "mvdp and Docker's macvlan differ");
    assert_eq!(
        ours,
        Seen {
            addressed: true,
            pings: [true; 5],
            a1_got_all: true,
            a2_saw_a1_unicast: false,
            tcp_exact: true,
        }
    );
    assert!(
        stray_links(&rig).is_empty(),
        "links left: {:?}",
        stray_links(&rig)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
