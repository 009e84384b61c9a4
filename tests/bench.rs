//! `mvdp bench --quick` end to end: every system and every direction is
//! measured, every system delivers traffic, iperf3 and sockperf give
//! figures, and the JSON carries every field. Shape only: speed is for the
//! benchmark itself, not for a test.

mod common;

use common::*;
use serde_json::Value;

const SYSTEMS: [&str; 5] = [
    "kernel_macvlan",
    "mvdp_fast_path",
    "mvdp_workers",
    "mvdp_tap",
    "mvdp_busy_poll",
];
/// Systems measured for frames and TCP (busy polling is for latency only).
const FRAME_SYSTEMS: [&str; 4] = [
    "kernel_macvlan",
    "mvdp_fast_path",
    "mvdp_workers",
    "mvdp_tap",
];
const DIRECTIONS: [&str; 4] = [
    "wire_to_containers_nic",
    "wire_to_containers_skb",
    "containers_to_wire",
    "container_to_container",
];
const FRAME_FIELDS: [&str; 17] = [
    "system",
    "direction",
    "frame_len",
    "max_offered_frames",
    "max_refused_frames",
    "max_delivered_frames",
    "max_loss_ratio",
    "max_offered_fps",
    "max_delivered_fps",
    "zero_loss_fps",
    "fixed_rate_fps",
    "fixed_delivered_frames",
    "fixed_loss_ratio",
    "cpu_ns_per_frame",
    "samples_max_delivered_fps",
    "samples_zero_loss_fps",
    "samples_cpu_ns_per_frame",
];

fn count(items: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    items.iter().filter(|v| pred(v)).count()
}

fn positive(v: &Value, field: &str, who: &str) {
    let x = v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{who}: {field} is not a number: {v}"));
    assert!(x > 0.0, "{who}: {field} is {x}, expected > 0");
}

fn samples(v: &Value, field: &str, runs: usize, who: &str) {
    let a = v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{who}: {field} is not an array: {v}"));
    assert_eq!(a.len(), runs, "{who}: {field} has one sample per run");
}

#[test]
fn quick_bench_measures_every_system_and_direction() {
    if !require_privileges() {
        return;
    }
    let out = std::env::temp_dir().join(unique("mvdpb"));
    let child = mvdp_command()
        .args(["bench", "--quick", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mvdp bench");
    let pid = child.id();
    let run = child.wait_with_output().expect("wait for mvdp bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "mvdp bench failed: {}\n{stdout}\n{stderr}",
        run.status
    );
    for label in [
        "kernel macvlan",
        "mvdp fast path",
        "mvdp workers",
        "mvdp tap",
        "mvdp busy poll",
        "wire → containers, NIC-like generator",
        "wire → containers, trafgen",
        "containers → wire",
        "container ↔ container",
        "TCP bulk",
        "latency: UDP request/response",
        "mvdp / kernel macvlan",
        "goals met",
        "resident memory",
    ] {
        assert!(
            stdout.contains(label),
            "the table lacks {label:?}:\n{stdout}"
        );
    }

    let json = std::fs::read_to_string(out.join("latest.json")).expect("latest.json");
    let v: Value = serde_json::from_str(&json).expect("valid JSON");
    for key in [
        "command",
        "started_at",
        "kernel",
        "cpus",
        "containers",
        "runs",
        "seconds",
        "tcp_seconds",
        "latency_seconds",
        "rig",
        "generator",
        "placement",
        "cpu_accounting",
        "frames",
        "tcp",
        "latency",
        "ratios",
        "memory",
    ] {
        assert!(v.get(key).is_some(), "JSON lacks {key}");
    }
    let runs = v["runs"].as_u64().expect("runs") as usize;
    assert!(runs > 0);

    let frames = v["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 16, "4 systems x 4 directions at 64 B");
    for system in FRAME_SYSTEMS {
        for direction in DIRECTIONS {
            assert_eq!(
                count(frames, |r| r["system"] == system
                    && r["direction"] == direction),
                1,
                "{system} {direction}"
            );
        }
    }
    for r in frames {
        for f in FRAME_FIELDS {
            assert!(r.get(f).is_some(), "frame result lacks {f}: {r}");
        }
        let who = format!("{} {} {}", r["system"], r["direction"], r["frame_len"]);
        assert!(
            r["max_delivered_frames"].as_u64().unwrap() > 0,
            "{who} delivered nothing at max load"
        );
        assert!(
            r["fixed_delivered_frames"].as_u64().unwrap() > 0,
            "{who} delivered nothing at the fixed rate"
        );
        positive(r, "zero_loss_fps", &who);
        positive(r, "cpu_ns_per_frame", &who);
        for f in [
            "samples_max_delivered_fps",
            "samples_zero_loss_fps",
            "samples_cpu_ns_per_frame",
        ] {
            samples(r, f, runs, &who);
        }
    }

    let tcp = v["tcp"].as_array().expect("tcp");
    assert_eq!(tcp.len(), 8, "4 systems x 2 directions");
    for system in FRAME_SYSTEMS {
        for direction in ["wire_to_container", "container_to_wire"] {
            assert_eq!(
                count(tcp, |r| r["system"] == system
                    && r["direction"] == direction),
                1,
                "TCP {system} {direction}"
            );
        }
    }
    for r in tcp {
        let who = format!("TCP {} {}", r["system"], r["direction"]);
        positive(r, "gbps", &who);
        assert!(r["retransmits"].is_u64(), "{who}: {r}");
        samples(r, "samples_gbps", runs, &who);
    }

    let latency = v["latency"].as_array().expect("latency");
    assert_eq!(latency.len(), 10, "5 systems x idle/busy core");
    for system in SYSTEMS {
        for load in ["idle", "busy_core"] {
            assert_eq!(
                count(latency, |r| r["system"] == system && r["load"] == load),
                1,
                "latency {system} {load}"
            );
        }
    }
    for r in latency {
        let who = format!("latency {} {}", r["system"], r["load"]);
        for f in ["p50_us", "p99_us", "p999_us"] {
            positive(r, f, &who);
        }
        for f in ["samples_p50_us", "samples_p99_us", "samples_p999_us"] {
            samples(r, f, runs, &who);
        }
    }

    let ratios = v["ratios"].as_array().expect("ratios");
    for r in ratios {
        for f in [
            "system", "key", "row", "figure", "ratio", "samples", "goal", "met",
        ] {
            assert!(r.get(f).is_some(), "ratio lacks {f}: {r}");
        }
        assert_ne!(r["system"], "kernel_macvlan");
    }
    // 4 directions x 3 figures + 2 TCP + 2 loads x 3 percentiles per system
    // measured everywhere; latency alone for busy polling.
    for system in ["mvdp_fast_path", "mvdp_workers", "mvdp_tap"] {
        assert_eq!(count(ratios, |r| r["system"] == system), 20, "{system}");
    }
    assert_eq!(count(ratios, |r| r["system"] == "mvdp_busy_poll"), 6);
    // The goals: 10 for the fast path, 7 for the workers.
    let goals = |s: &str| count(ratios, |r| r["system"] == s && !r["goal"].is_null());
    assert_eq!(goals("mvdp_fast_path"), 10);
    assert_eq!(goals("mvdp_workers"), 7);

    let memory = v["memory"].as_array().expect("memory");
    assert!(!memory.is_empty());
    for m in memory {
        assert!(m["rss_idle_kib"].as_u64().unwrap() > 0);
        assert!(m["rss_after_traffic_kib"].as_u64().unwrap() > 0);
    }
    let png = std::fs::read(out.join("latest.png")).expect("latest.png");
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a real PNG"
    );
    let _ = std::fs::remove_dir_all(&out);
    // Nothing of the rigs is left (they are tagged with the bench's PID).
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    for tag in [format!("mvdp-bench-{pid}-"), format!("mvdp-mem-{pid}-")] {
        assert!(
            !left.contains(&tag),
            "namespaces {tag}* left behind:\n{left}"
        );
    }
}
