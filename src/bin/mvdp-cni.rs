//! `mvdp-cni`: the CNI plugin binary. The runtime sets `CNI_*`, writes the
//! network configuration to stdin and reads the result (or a CNI error)
//! from stdout; the work is in `mvdp::cni`. `mvdp-cni install DIR` copies
//! the binary into DIR (the DaemonSet's init container).

use std::io::{Read, Write};

fn main() {
    // Not a CNI call: `mvdp-cni install DIR` puts the plugin into DIR.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("install") {
        let Some(dir) = argv.get(2) else {
            eprintln!("usage: mvdp-cni install DIR   (e.g. /opt/cni/bin)");
            std::process::exit(64);
        };
        match mvdp::cni::install(std::path::Path::new(dir)) {
            Ok(path) => {
                println!("installed {}", path.display());
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("mvdp-cni install {dir}: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => mvdp::cni::run(|k| std::env::var(k).ok(), &stdin),
        Err(e) => mvdp::cni::Outcome {
            stdout: Some(
                mvdp::cni::error::CniError::new(
                    mvdp::cni::error::code::IO,
                    "cannot read stdin",
                    e.to_string(),
                )
                .to_json("1.0.0"),
            ),
            exit: 1,
        },
    };
    if let Some(json) = outcome.stdout {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{json}");
        let _ = out.flush();
    }
    std::process::exit(outcome.exit);
}
