//! Compiles every BPF program in `bpf/` (`bpf/NAME.c`) to
//! `$OUT_DIR/NAME.bpf.o`, which `src/io/` embeds with `include_bytes_aligned!`.
//!
//! Needs clang (with the BPF target) and libbpf's headers:
//! `apt-get install clang libbpf-dev`. Set `CLANG` to use another compiler.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The programs, each built from `bpf/NAME.c` into `NAME.bpf.o`.
const PROGRAMS: [&str; 3] = ["mvdp", "fastpath", "gen"];

fn main() {
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    for name in PROGRAMS {
        let source = format!("bpf/{name}.c");
        compile(&clang, &source, &out_dir.join(format!("{name}.bpf.o")));
    }
}

/// Compiles one BPF C file with `clang -target bpf`.
fn compile(clang: &str, source: &str, object: &Path) {
    let mut cmd = Command::new(clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c"]);
    // The BPF target has no sysroot of its own: <linux/types.h> pulls in
    // <asm/types.h>, which Debian keeps under the multiarch include dir.
    if let Some(dir) = multiarch_include_dir() {
        cmd.arg(format!("-I{}", dir.display()));
    }
    cmd.arg(source).arg("-o").arg(object);

    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(&format!(
            "`{clang}` not found: building mvdp's XDP program needs clang and libbpf's headers \
             (Debian/Ubuntu: `apt-get install clang libbpf-dev`; or set CLANG=/path/to/clang)"
        )),
        Err(e) => fail(&format!("could not run `{clang}`: {e}")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("bpf/bpf_helpers.h") {
            "libbpf's headers are missing: `apt-get install libbpf-dev`"
        } else if stderr.contains("asm/types.h") {
            "the kernel's asm headers are missing: `apt-get install linux-libc-dev` \
             (or the multiarch include dir was not found)"
        } else if stderr.contains("No available targets") || stderr.contains("unknown target") {
            "this clang lacks the BPF target: install Debian's `clang` and `llvm`"
        } else {
            "see clang's output above"
        };
        fail(&format!(
            "compiling {source} with `{clang}` failed ({}): {hint}\n{stderr}",
            output.status
        ));
    }
}

/// Debian's multiarch include dir for the target (e.g. /usr/include/x86_64-linux-gnu),
/// if it exists; else whatever `clang -print-multiarch` names; else none.
fn multiarch_include_dir() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let endian = env::var("CARGO_CFG_TARGET_ENDIAN").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let env_suffix = if target_env.is_empty() {
        "gnu"
    } else {
        target_env.as_str()
    };
    let tuple = match (arch.as_str(), endian.as_str()) {
        ("x86", _) => format!("i386-linux-{env_suffix}"),
        ("arm", _) => format!("arm-linux-{env_suffix}eabihf"),
        ("powerpc64", "little") => format!("powerpc64le-linux-{env_suffix}"),
        ("mips64", "little") => format!("mips64el-linux-{env_suffix}abi64"),
        (arch, _) => format!("{arch}-linux-{env_suffix}"),
    };
    let candidate = Path::new("/usr/include").join(tuple);
    if candidate.join("asm/types.h").exists() {
        return Some(candidate);
    }
    // Fall back to the host compiler's idea (right for native builds).
    let printed = Command::new("cc").arg("-print-multiarch").output().ok()?;
    let tuple = String::from_utf8(printed.stdout).ok()?;
    let candidate = Path::new("/usr/include").join(tuple.trim());
    (!tuple.trim().is_empty() && candidate.join("asm/types.h").exists()).then_some(candidate)
}

/// Stops the build; cargo prints our stderr under the failed build script.
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}
