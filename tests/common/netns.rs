//! `Netns`: a throwaway named network namespace that deletes itself on drop.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where `ip netns` keeps its namespace handles.
pub const NETNS_DIR: &str = "/var/run/netns";

/// A named network namespace created with `ip netns add`; `Drop` runs
/// `ip netns del` and, if that fails, prints the command to run by hand.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name`. Panics if `ip netns add` fails.
    pub fn new(name: &str) -> Netns {
        let out = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .expect("spawn `ip netns add`");
        assert!(
            out.status.success(),
            "ip netns add {name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Netns {
            name: name.to_string(),
        }
    }

    /// The namespace's name, as `ip netns` and mvdp's `netns = ...` know it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's handle file, `/var/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `ip netns exec <name> args...` and returns its output, whatever
    /// the exit status.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("spawn `ip netns exec {} {args:?}`: {e}", self.name))
    }

    /// Like [`Netns::exec`], but panics with the command's stderr unless it
    /// succeeds; returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "in netns {}: {args:?} failed ({}): {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `ip -n <name> args...` (e.g. `ns.ip(&["link", "set", "p0", "up"])`),
    /// panicking with stderr on failure; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = self.ip_output(args);
        assert!(
            out.status.success(),
            "ip -n {} {} failed ({}): {}",
            self.name,
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `ip -n <name> args...` and returns its output, whatever the exit
    /// status.
    pub fn ip_output(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("spawn `ip -n`")
    }

    /// Runs `f` on a fresh thread that has `setns`'d into this namespace and
    /// returns its result; a panic in `f` is propagated. Sockets created in
    /// `f` stay in this namespace wherever they are used afterwards.
    pub fn in_ns<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> T {
        in_netns_path(&self.path(), f)
    }

    /// Writes a sysctl of this namespace, e.g.
    /// `set_sysctl("net/ipv6/conf/all/disable_ipv6", "1")`.
    pub fn set_sysctl(&self, key: &str, value: &str) {
        let path = Path::new("/proc/sys").join(key);
        self.in_ns(|| std::fs::write(&path, value))
            .unwrap_or_else(|e| panic!("netns {}: write {}: {e}", self.name, path.display()));
    }

    /// Reads a sysctl of this namespace (trimmed).
    pub fn sysctl(&self, key: &str) -> String {
        let path = Path::new("/proc/sys").join(key);
        self.in_ns(|| std::fs::read_to_string(&path))
            .unwrap_or_else(|e| panic!("netns {}: read {}: {e}", self.name, path.display()))
            .trim()
            .to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let failure = match out {
            Ok(o) if o.status.success() => return,
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "WARNING: could not delete network namespace {}: {failure}\n\
             WARNING: clean up by hand: ip netns del {}",
            self.name, self.name
        );
    }
}

/// Runs `f` on a fresh thread that has `setns`'d into the network namespace
/// at `path` (a `/var/run/netns/<name>` or `/proc/<pid>/ns/net` file).
pub fn in_netns_path<T: Send, F: FnOnce() -> T + Send>(path: &Path, f: F) -> T {
    let handle = File::open(path)
        .unwrap_or_else(|e| panic!("open network namespace {}: {e}", path.display()));
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            // SAFETY: `handle` is an open network-namespace fd that outlives
            // this call; setns(CLONE_NEWNET) only changes the calling thread,
            // which is this short-lived scoped thread.
            let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                panic!(
                    "setns({}): {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
            f()
        });
        match worker.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
