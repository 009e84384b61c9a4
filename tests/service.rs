//! The systemd unit in `config/systemd/`: `systemd-analyze verify` accepts it
//! (with its commands pointed at the binary under test), it restarts mvdp
//! on failure but not on a bad config, and it grants capabilities, not root's
//! full set.

mod common;

use common::MVDP;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/systemd/mvdp.service");

fn unit() -> String {
    std::fs::read_to_string(UNIT).unwrap_or_else(|e| panic!("read {UNIT}: {e}"))
}

/// The value of `key=` in the unit (the last one, as systemd reads it).
fn value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .map(str::to_string)
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let dir = std::env::temp_dir().join(common::unique("mvdp-unit-"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mvdp.service");
    std::fs::write(&path, unit().replace("/usr/local/bin/mvdp", MVDP)).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let _ = std::fs::remove_dir_all(&dir);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on many warnings (an unknown value is "ignored"): any
    // line about our unit is a finding.
    let findings: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("mvdp.service"))
        .collect();
    assert!(
        out.status.success() && findings.is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}

#[test]
fn the_unit_restarts_on_failure_with_capabilities_spelled_out() {
    let text = unit();
    assert_eq!(value(&text, "Restart").as_deref(), Some("on-failure"));
    assert_eq!(
        value(&text, "RestartPreventExitStatus").as_deref(),
        Some("78"),
        "a bad config (exit 78) must not restart in a loop"
    );
    assert_eq!(value(&text, "RuntimeDirectory").as_deref(), Some("mvdp"));
    let caps = value(&text, "CapabilityBoundingSet").expect("CapabilityBoundingSet");
    let caps: Vec<&str> = caps.split_whitespace().collect();
    for needed in ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF", "CAP_SYS_ADMIN"] {
        assert!(caps.contains(&needed), "{needed} missing from {caps:?}");
    }
    assert!(caps.len() < 10, "close to root's full set: {caps:?}");
    assert_eq!(
        value(&text, "AmbientCapabilities").as_deref(),
        value(&text, "CapabilityBoundingSet").as_deref()
    );
    assert!(value(&text, "ExecStart")
        .unwrap()
        .contains("mvdp run --config"));
}
