//! `mvdp-cni`: the CNI plugin binary. The runtime sets `CNI_*`, writes the
//! network configuration to stdin and reads the result (or a CNI error)
//! from stdout; the work is in `mvdp::cni`.

use std::io::{Read, Write};

fn main() {
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
