//! podman for real (issue 10): Debian's podman 4.3 with the CNI backend runs
//! busybox containers on an mvdp network through `mvdp-cni`, and on a
//! kernel macvlan network through the reference `macvlan` plugin, side by
//! side on one rig. Everything podman keeps lives in a temp dir of the
//! test's own (its containers.conf, storage.conf, CNI configs and plugins,
//! host-local leases). Outside it podman makes container network
//! namespaces under /run/netns (removed by `podman rm`), and, whatever its
//! config says, containers/image's blob info cache and libcni's result
//! cache under /var/lib: the test removes those if it made them.

mod common;

use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The plugin under test.
const MVDP_CNI: &str = env!("CARGO_BIN_EXE_mvdp-cni");
/// Debian's containernetworking-plugins (host-local, macvlan, …).
const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";
/// The 4 MiB every container echoes back.
const TRANSFER: usize = 4 << 20;
/// The busybox applets the image links.
const APPLETS: [&str; 10] = [
    "sh",
    "nc",
    "cat",
    "sleep",
    "ip",
    "ping",
    "ls",
    "sha256sum",
    "wc",
    "true",
];
/// How long podman gets for one command (image import, run, rm).
const PODMAN_TIMEOUT: Duration = Duration::from_secs(120);

/// One call of mvdp-cni as the wrapper recorded it.
#[derive(Debug)]
struct PluginCall {
    command: String,
    /// The process that ran the plugin (a podman).
    ppid: u32,
    /// `CNI_ARGS`.
    args: String,
    /// The config on stdin.
    stdin: serde_json::Value,
}

/// A private podman: its own containers.conf and storage.conf (graphroot,
/// runroot, tmp dir, CNI config dir, CNI plugin dirs) under one temp dir.
/// Drop removes every container it ran, its storage and the dir.
struct Podman {
    dir: PathBuf,
    containers_conf: PathBuf,
    storage_conf: PathBuf,
    /// What podman writes outside its config as root, whatever the config
    /// says, that did not exist before: removed at the end (deepest first;
    /// a directory only if empty).
    made_outside: Vec<PathBuf>,
}

/// Podman's writes outside its config: containers/image's blob info cache
/// and libcni's result cache (emptied again by DEL).
const OUTSIDE: [&str; 5] = [
    "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
    "/var/lib/containers/cache",
    "/var/lib/containers",
    "/var/lib/cni/results",
    "/var/lib/cni",
];

impl Podman {
    fn new() -> Podman {
        let dir = std::env::temp_dir().join(unique("cni-podman-"));
        let p = |s: &str| dir.join(s);
        for d in ["cni-conf", "cni-bin", "graph", "run", "tmp", "ipam"] {
            std::fs::create_dir_all(p(d)).unwrap();
        }
        // podman finds `mvdp-cni` in cni-bin: a shell wrapper that records
        // each call (command, the calling process, CNI_ARGS, stdin on one
        // line) in calls.log, then execs the built plugin with the same stdin.
        std::fs::create_dir_all(p("real")).unwrap();
        std::fs::copy(MVDP_CNI, p("real/mvdp-cni")).expect("copy mvdp-cni");
        let wrapper = p("cni-bin/mvdp-cni");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nin=$(cat)\n\
                 printf '%s\\t%s\\t%s\\t%s\\n' \"$CNI_COMMAND\" \"$PPID\" \"$CNI_ARGS\" \
                 \"$(printf '%s' \"$in\" | tr -d '\\n')\" >> {log}\n\
                 printf '%s' \"$in\" | exec {real}\n",
                log = p("calls.log").display(),
                real = p("real/mvdp-cni").display(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let containers_conf = p("containers.conf");
        std::fs::write(
            &containers_conf,
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={nofile}\", \"nproc={nproc}\"]\n\n\
                 [network]\nnetwork_backend = \"cni\"\n\
                 network_config_dir = \"{conf}\"\n\
                 cni_plugin_dirs = [\"{bin}\", \"{DEBIAN_CNI_DIR}\"]\n\
                 default_network = \"cni-unused\"\n\n\
                 [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{events}\"\n\
                 tmp_dir = \"{tmp}\"\nstatic_dir = \"{graph}/libpod\"\n\
                 volume_path = \"{graph}/volumes\"\nnetwork_cmd_path = \"\"\n",
                nofile = rlimit(libc::RLIMIT_NOFILE, 1024),
                nproc = rlimit(libc::RLIMIT_NPROC, 4096),
                conf = p("cni-conf").display(),
                bin = p("cni-bin").display(),
                events = p("events.log").display(),
                tmp = p("tmp").display(),
                graph = p("graph").display(),
            ),
        )
        .unwrap();
        let storage_conf = p("storage.conf");
        std::fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                p("graph").display(),
                p("run").display()
            ),
        )
        .unwrap();
        Podman {
            dir,
            containers_conf,
            storage_conf,
            made_outside: OUTSIDE
                .iter()
                .map(PathBuf::from)
                .filter(|p| !p.exists())
                .collect(),
        }
    }

    /// Writes a CNI network config list into podman's config dir.
    fn add_network(&self, name: &str, conflist: &serde_json::Value) {
        let path = self.dir.join("cni-conf").join(format!("{name}.conflist"));
        std::fs::write(path, serde_json::to_string_pretty(conflist).unwrap()).unwrap();
    }

    /// The calls podman made to mvdp-cni, in order.
    fn plugin_calls(&self) -> Vec<PluginCall> {
        std::fs::read_to_string(self.dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut f = line.splitn(4, '\t');
                let mut next = || f.next().unwrap_or_default().to_string();
                let (command, ppid, args, stdin) = (next(), next(), next(), next());
                PluginCall {
                    command,
                    ppid: ppid.parse().unwrap_or(0),
                    args,
                    stdin: serde_json::from_str(&stdin).unwrap_or(serde_json::Value::Null),
                }
            })
            .collect()
    }

    /// host-local's data dir for this podman.
    fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }

    /// `podman ARGS` with this podman's config; the output, whatever the status.
    fn output(&self, args: &[&str]) -> Output {
        let mut child = Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", &self.containers_conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run podman");
        // Read both pipes on threads so a chatty podman never blocks.
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
            v
        });
        let err_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
            v
        });
        let deadline = Instant::now() + PODMAN_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("podman {args:?} took longer than {PODMAN_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: out_t.join().unwrap(),
            stderr: err_t.join().unwrap(),
        }
    }

    /// `podman ARGS`; panics with stderr unless it succeeds; stdout trimmed.
    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "podman {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Imports a busybox image made from Debian's busybox-static: /bin/busybox
    /// and a symlink per applet, no registry involved. Returns its name.
    fn import_busybox(&self) -> String {
        let root = self.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy /bin/busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = self.dir.join("rootfs.tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let image = "localhost/cni-busybox:test";
        self.run(&["import", tar.to_str().unwrap(), image]);
        image.to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let out = self.output(&["rm", "--all", "--force", "--time", "0"]);
        if !out.status.success() {
            eprintln!(
                "WARNING: podman rm --all failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let _ = self.output(&["rmi", "--all", "--force"]);
        for path in &self.made_outside {
            if path.is_dir() {
                let _ = std::fs::remove_dir(path);
            } else {
                let _ = std::fs::remove_file(path);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "WARNING: could not remove {}: {e}\nWARNING: clean up by hand: rm -rf {}",
                self.dir.display(),
                self.dir.display()
            );
        }
    }
}

/// `n:n` for the limit `resource`, `n` being `cap` or this process's soft
/// limit if lower. podman as root asks runc for more open files and
/// processes than this machine lets anyone raise to (no CAP_SYS_RESOURCE;
/// runc fails with EPERM, seen here with nproc above 32768 while the
/// shell's limit was 96362): the containers get modest limits instead.
fn rlimit(resource: libc::__rlimit_resource_t, cap: u64) -> String {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one `rlimit` into the struct we own.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    let n = lim.rlim_cur.min(cap);
    format!("{n}:{n}")
}

/// A veth in the root namespace (podman runs CNI plugins there, so the
/// reference macvlan plugin's `master` must be there) whose peer is the
/// wire's second interface. Drop deletes it (and so its peer).
struct RootVeth {
    name: String,
}

impl RootVeth {
    fn new(wire: &Netns, peer: &str) -> RootVeth {
        let name = unique("cni");
        let run = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            wire.name(),
        ]);
        let guard = RootVeth { name };
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", guard.name),
            "1",
        );
        run(&["link", "set", &guard.name, "up"]);
        guard
    }

    fn exists(&self) -> bool {
        Path::new("/sys/class/net").join(&self.name).exists()
    }

    fn rx_packets(&self) -> u64 {
        std::fs::read_to_string(format!(
            "/sys/class/net/{}/statistics/rx_packets",
            self.name
        ))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
    }
}

impl Drop for RootVeth {
    fn drop(&mut self) {
        if self.exists() {
            let out = Command::new("ip")
                .args(["link", "del", &self.name])
                .output();
            if !out.is_ok_and(|o| o.status.success()) {
                eprintln!("WARNING: clean up by hand: ip link del {}", self.name);
            }
        }
    }
}

/// A host-local IPAM section over .100-.199 of `subnet` (a /24 given as
/// its first three octets).
fn host_local(prefix: &str, data_dir: &Path) -> serde_json::Value {
    serde_json::json!({
        "type": "host-local",
        "ranges": [[{
            "subnet": format!("{prefix}.0/24"),
            "gateway": format!("{prefix}.1"),
            "rangeStart": format!("{prefix}.100"),
            "rangeEnd": format!("{prefix}.199"),
        }]],
        "dataDir": data_dir,
    })
}

/// The container's interface counter `stat` (e.g. rx_packets) as podman exec reads it.
fn container_counter(podman: &Podman, name: &str, stat: &str) -> u64 {
    podman
        .run(&[
            "exec",
            name,
            "cat",
            &format!("/sys/class/net/eth0/statistics/{stat}"),
        ])
        .parse()
        .unwrap()
}

/// The MAC the wire has learned for `ip` (ARP), as text.
fn wire_neighbour(wire: &Netns, ip: Ipv4Addr) -> String {
    let out = wire.ip(&["neigh", "show", &ip.to_string()]);
    out.split_whitespace()
        .skip_while(|t| *t != "lladdr")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// Starts busybox `nc -l -p 5000 -e cat` in container `name` (an echo
/// server), sends it `TRANSFER` pseudo-random bytes from the wire and
/// asserts every byte comes back, in order, and nothing more.
fn echo_transfer(podman: &Podman, name: &str, wire: &Netns, ip: Ipv4Addr) {
    podman.run(&["exec", "-d", name, "nc", "-l", "-p", "5000", "-e", "cat"]);
    let data: Vec<u8> = {
        let mut x: u32 = 0x9e37_79b9;
        (0..TRANSFER)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    };
    let back = wire.in_ns(|| {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match TcpStream::connect_timeout(&(ip, 5000).into(), Duration::from_secs(2)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("connect to {ip}:5000 in {name}: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let sent = data.clone();
        let w = std::thread::spawn(move || {
            writer.write_all(&sent).expect("send 4 MiB");
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::with_capacity(TRANSFER);
        (&stream).read_to_end(&mut back).expect("read the echo");
        w.join().unwrap();
        back
    });
    assert_eq!(
        back.len(),
        TRANSFER,
        "{name}: echoed {} of {TRANSFER} bytes",
        back.len()
    );
    assert!(back == data, "{name}: the echo differs from what was sent");
}

#[test]
fn podman_containers_on_mvdp_and_kernel_macvlan_side_by_side() {
    if !require_privileges() || !require_command("podman", "Debian package podman") {
        return;
    }
    let started = Instant::now();
    let rig = Rig::with_prefix("cni", 0, 1);
    let mut daemon = Daemon::start(&rig, &rig.base_toml(""));
    daemon.wait_ready(Duration::from_secs(20));
    // The kernel macvlan's parent: a second wire interface w1, 10.78.0.1/24.
    let parent = RootVeth::new(&rig.wire, "w1");
    rig.wire.run(&["ethtool", "-K", "w1", "tx", "off"]);
    rig.wire.ip(&["addr", "add", "10.78.0.1/24", "dev", "w1"]);
    rig.wire.ip(&["link", "set", "w1", "up"]);

    let podman = Podman::new();
    let id = rig.id.clone();
    let (mvdp_net, kernel_net) = (format!("{id}-mvdp"), format!("{id}-macvlan"));
    podman.add_network(
        &mvdp_net,
        &serde_json::json!({
            "cniVersion": "1.0.0",
            "name": mvdp_net,
            "plugins": [{
                "type": "mvdp-cni",
                "master": NETWORK,
                "mode": "bridge",
                "socket": rig.control_socket,
                "ipam": host_local("10.77.0", &podman.ipam_dir()),
            }],
        }),
    );
    podman.add_network(
        &kernel_net,
        &serde_json::json!({
            "cniVersion": "0.4.0",
            "name": kernel_net,
            "plugins": [{
                "type": "macvlan",
                "master": parent.name,
                "mode": "bridge",
                "ipam": host_local("10.78.0", &podman.ipam_dir()),
            }],
        }),
    );
    let image = podman.import_busybox();

    struct Case<'a> {
        name: String,
        network: &'a str,
        ip: Ipv4Addr,
        mac: &'a str,
    }
    let cases = [
        Case {
            name: format!("{id}-m"),
            network: &mvdp_net,
            ip: Ipv4Addr::new(10, 77, 0, 150),
            mac: "02:aa:00:00:00:01",
        },
        Case {
            name: format!("{id}-k"),
            network: &kernel_net,
            ip: Ipv4Addr::new(10, 78, 0, 150),
            mac: "02:aa:00:00:00:02",
        },
    ];
    let mut sandboxes = Vec::new();
    for c in &cases {
        let t = Instant::now();
        let ip = c.ip.to_string();
        let out = podman.output(&[
            "run",
            "-d",
            "--name",
            &c.name,
            "--network",
            c.network,
            "--ip",
            &ip,
            "--mac-address",
            c.mac,
            &image,
            "sleep",
            "3600",
        ]);
        assert!(
            out.status.success(),
            "podman run on {}: {}\n{}",
            c.network,
            String::from_utf8_lossy(&out.stderr),
            daemon.log()
        );
        eprintln!("podman run on {}: {:?}", c.network, t.elapsed());
        sandboxes.push(podman.run(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.SandboxKey}}",
            &c.name,
        ]));
        // podman reports what the plugin returned.
        let shown = podman.run(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.MacAddress}}{{end}}",
            &c.name,
        ]);
        assert_eq!(
            shown,
            format!("{} {}", c.ip, c.mac),
            "podman inspect {}",
            c.name
        );
        let lease = podman.ipam_dir().join(c.network).join(&ip);
        assert!(lease.exists(), "no host-local lease {}", lease.display());
    }

    // Where the frames arrive: the mvdp container behind mvdp's endpoint,
    // the other behind the kernel's macvlan on the second parent; both at
    // the address and MAC podman asked for.
    let endpoints = endpoint_list(&rig);
    let mvdp_ep = endpoints
        .iter()
        .find(|e| e["ip"] == "10.77.0.150")
        .unwrap_or_else(|| panic!("no mvdp endpoint for the podman container: {endpoints:?}"));
    assert_eq!(mvdp_ep["mac"], cases[0].mac);
    assert!(
        mvdp_ep["name"].as_str().unwrap().starts_with("cni-"),
        "{mvdp_ep}"
    );
    assert_eq!(
        endpoints.len(),
        1,
        "only the mvdp container is mvdp's: {endpoints:?}"
    );
    for c in &cases {
        let rx_before = container_counter(&podman, &c.name, "rx_packets");
        let parent_before = parent.rx_packets();
        assert!(
            ping(&rig.wire, c.ip, 3),
            "wire -> {} ({})\n{}",
            c.name,
            c.network,
            daemon.log()
        );
        assert_eq!(
            wire_neighbour(&rig.wire, c.ip),
            c.mac,
            "the wire's ARP entry for {}",
            c.ip
        );
        let rx = container_counter(&podman, &c.name, "rx_packets") - rx_before;
        assert!(rx >= 3, "{}: eth0 received {rx} frames for 3 pings", c.name);
        // The macvlan container's replies leave by the kernel's parent, the
        // mvdp one's never touch it.
        let through_parent = parent.rx_packets() - parent_before;
        if c.network == kernel_net {
            assert!(
                through_parent >= 3,
                "macvlan replies not on its parent ({through_parent})"
            );
        } else {
            assert!(
                through_parent < 3,
                "mvdp's container answered via the macvlan parent"
            );
        }
        echo_transfer(&podman, &c.name, &rig.wire, c.ip);
    }
    let ep_after = endpoint_list(&rig);
    let ep = ep_after.iter().find(|e| e["ip"] == "10.77.0.150").unwrap();
    let delivered = ep["tx_packets"].as_u64().unwrap();
    assert!(
        delivered >= (TRANSFER / 1500) as u64,
        "mvdp delivered only {delivered} frames to the container"
    );

    // podman rm -f: DEL from another process with prevResult: the endpoint,
    // the lease and the namespace go.
    for (c, sandbox) in cases.iter().zip(&sandboxes) {
        let t = Instant::now();
        podman.run(&["rm", "--force", "--time", "0", &c.name]);
        eprintln!("podman rm on {}: {:?}", c.network, t.elapsed());
        let lease = podman.ipam_dir().join(c.network).join(c.ip.to_string());
        assert!(
            !lease.exists(),
            "{}: lease {} left after podman rm",
            c.name,
            lease.display()
        );
        assert!(
            !Path::new(sandbox).exists(),
            "{}: namespace {sandbox} left",
            c.name
        );
    }
    assert_eq!(
        endpoint_list(&rig),
        Vec::<serde_json::Value>::new(),
        "mvdp endpoints left after podman rm"
    );

    // What podman said to the plugin: VERSION first, IP= and MAC= in
    // CNI_ARGS on ADD, DEL from another podman process with prevResult.
    let calls = podman.plugin_calls();
    let commands: Vec<&str> = calls.iter().map(|c| c.command.as_str()).collect();
    eprintln!("mvdp-cni calls by podman: {commands:?}");
    let add = calls
        .iter()
        .position(|c| c.command == "ADD")
        .unwrap_or_else(|| panic!("no ADD: {commands:?}"));
    let del = calls
        .iter()
        .position(|c| c.command == "DEL")
        .unwrap_or_else(|| panic!("no DEL: {commands:?}"));
    assert!(
        add > 0 && calls[add - 1].command == "VERSION",
        "no VERSION before ADD: {commands:?}"
    );
    assert!(
        calls[del - 1].command == "VERSION",
        "no VERSION before DEL: {commands:?}"
    );
    let args: Vec<&str> = calls[add].args.split(';').collect();
    assert!(
        args.contains(&"IP=10.77.0.150"),
        "ADD's CNI_ARGS: {}",
        calls[add].args
    );
    assert!(
        args.contains(&format!("MAC={}", cases[0].mac).as_str()),
        "ADD's CNI_ARGS: {}",
        calls[add].args
    );
    assert_ne!(
        calls[add].ppid, calls[del].ppid,
        "ADD and DEL from one process"
    );
    assert_eq!(
        calls[del].stdin["prevResult"]["ips"][0]["address"], "10.77.0.150/24",
        "DEL's prevResult: {}",
        calls[del].stdin
    );
    let status = daemon.stop();
    assert!(status.success(), "mvdp exit: {status}\n{}", daemon.log());
    rig.assert_host_clean();
    // podman's storage and configs go with its dir; the macvlan parent goes too.
    let podman_dir = podman.dir.clone();
    drop(podman);
    assert!(!podman_dir.exists(), "{} left", podman_dir.display());
    let parent_name = parent.name.clone();
    drop(parent);
    assert!(
        !Path::new("/sys/class/net").join(&parent_name).exists(),
        "{parent_name} left in the root namespace"
    );
    eprintln!("podman test body took {:?}", started.elapsed());
}
