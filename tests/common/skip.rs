//! Skipping a privileged test: loudly on a developer's machine, never in CI.
//!
//! A test that needs root (or AF_XDP) starts with
//! `if !require(Needs::Root) { return; }`. Without the privileges it prints
//! `SKIP: <test>: <why>` to stderr and passes; with `CI=true` in the
//! environment it panics with the same line instead, because a CI run whose
//! privileged tests did not run has proved nothing.

/// `AF_XDP` address family (`linux/socket.h`); spelled out so the probe does
/// not depend on which libc constants exist.
const AF_XDP: libc::c_int = 44;

/// What a privileged test needs from the machine it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Root: network namespaces, veth and TAP links, attaching XDP programs.
    Root,
    /// Root and AF_XDP sockets: anything that runs mvdp's workers.
    RootAndXdp,
}

impl Needs {
    fn describe(self) -> &'static str {
        match self {
            Needs::Root => "root",
            Needs::RootAndXdp => "root and AF_XDP",
        }
    }
}

/// What to do with a test, given what it needs and what the machine offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipVerdict {
    /// Everything needed is there.
    Run,
    /// Something is missing: say why (loudly) and pass.
    Skip(String),
    /// Something is missing and this is CI: fail, saying why.
    Fail(String),
}

/// The decision behind [`require`], free of the environment: `euid` is the
/// effective uid, `af_xdp_error` why `socket(AF_XDP)` failed (`None` if it
/// worked or was not tried), `ci` whether `CI=true`. The reason names what
/// was needed and what was missing.
pub fn skip_verdict(needs: Needs, euid: u32, af_xdp_error: Option<&str>, ci: bool) -> SkipVerdict {
    let missing = if euid != 0 {
        format!("running as uid {euid}, not root")
    } else {
        match (needs, af_xdp_error) {
            (Needs::RootAndXdp, Some(err)) => format!("socket(AF_XDP) failed: {err}"),
            _ => return SkipVerdict::Run,
        }
    };
    let reason = format!("needs {} ({missing})", needs.describe());
    if ci {
        SkipVerdict::Fail(reason)
    } else {
        SkipVerdict::Skip(reason)
    }
}

/// True if this process has what `needs` asks for. Otherwise prints a loud
/// `SKIP: <test>: ...` line to stderr and returns false, so a test can
/// `if !require(Needs::Root) { return; }` — unless `CI=true`, where it
/// panics with that line: in CI a test that cannot run fails.
#[track_caller]
pub fn require(needs: Needs) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let af_xdp_error = (needs == Needs::RootAndXdp && euid == 0)
        .then(probe_af_xdp)
        .and_then(Result::err);
    let ci = std::env::var_os("CI").is_some_and(|v| v == "true");
    let line = |reason: &str| {
        let test = std::thread::current()
            .name()
            .unwrap_or("<unnamed test>")
            .to_string();
        format!("SKIP: {test}: {reason}")
    };
    match skip_verdict(needs, euid, af_xdp_error.as_deref(), ci) {
        SkipVerdict::Run => true,
        SkipVerdict::Skip(reason) => {
            print_skip(&line(&reason));
            false
        }
        SkipVerdict::Fail(reason) => panic!(
            "{}\nCI=true: a test that cannot run fails instead of skipping",
            line(&reason)
        ),
    }
}

/// `require(Needs::RootAndXdp)`: root and AF_XDP, what most end-to-end
/// tests need because they run the daemon.
#[track_caller]
pub fn require_privileges() -> bool {
    require(Needs::RootAndXdp)
}

/// Opens and closes an AF_XDP socket; the error if that is not possible.
fn probe_af_xdp() -> Result<(), String> {
    // SAFETY: socket(2) with constant arguments; the result is checked below
    // and a valid fd is closed exactly once.
    let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: `fd` is a socket we just created and own; closed once.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Writes a skip notice straight to the process's stderr: `eprintln!` would
/// be swallowed by the test harness's output capture for a passing test.
fn print_skip(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// True if `command` is on PATH (Debian package `package` brings it; `make
/// deps` installs it). Otherwise skips loudly, or with `CI=true` panics,
/// as [`require`] does.
#[track_caller]
pub fn require_command(command: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()));
    if found {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    let line = format!("SKIP: {test}: needs {command} ({package}; `make deps` installs it)");
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("{line}\nCI=true: a test that cannot run fails instead of skipping");
    }
    print_skip(&line);
    false
}
