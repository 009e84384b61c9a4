//! Running code inside another network namespace without moving mvdp.
//!
//! `setns(CLONE_NEWNET)` acts on the calling thread only, so the work runs on
//! a fresh thread that enters the namespace, runs, and exits; no other thread
//! of mvdp ever changes namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Runs `f` on a fresh thread that has `setns()`'d into the network namespace
/// at `netns_path` (e.g. `/var/run/netns/c1` or `/proc/PID/ns/net`) and
/// returns its result.
///
/// Sockets `f` opens belong to that namespace for their whole life, even after
/// the thread ends. Fails if the path cannot be opened or is not a network
/// namespace; a panic in `f` is resumed on the caller's thread.
pub fn in_netns<T: Send>(netns_path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let ns = File::open(netns_path).map_err(|e| annotate(netns_path, "open", e))?;
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("mvdp-netns".into())
            .spawn_scoped(scope, move || {
                // SAFETY: setns(2) takes a descriptor that `ns` keeps open for
                // the call; it changes only this (fresh, scoped) thread's
                // network namespace.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(annotate(netns_path, "setns", io::Error::last_os_error()));
                }
                drop(ns);
                Ok(f())
            })?;
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Keeps the OS error kind but names the namespace and the step that failed.
fn annotate(netns_path: &Path, op: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{op} network namespace {}: {e}", netns_path.display()),
    )
}
