//! `mvdp bench --quick` end to end: every system delivers traffic and the JSON
//! carries every figure. (Speed is for the benchmark itself, not for a test.)

mod common;

use common::*;

#[test]
fn quick_bench_measures_every_system_and_writes_every_field() {
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
        "mvdp veth",
        "mvdp tap",
        "ratios",
        "resident memory",
    ] {
        assert!(
            stdout.contains(label),
            "the table lacks {label:?}:\n{stdout}"
        );
    }

    let json = std::fs::read_to_string(out.join("latest.json")).expect("latest.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    for key in [
        "command",
        "started_at",
        "kernel",
        "cpus",
        "containers",
        "runs",
        "seconds",
        "generator",
    ] {
        assert!(v.get(key).is_some(), "JSON lacks {key}");
    }
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 6, "3 systems x 2 frame sizes");
    const FIELDS: [&str; 16] = [
        "system",
        "frame_len",
        "max_offered_frames",
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
        "frame_len",
    ];
    for r in results {
        for f in FIELDS {
            assert!(r.get(f).is_some(), "result lacks {f}: {r}");
        }
        let who = format!("{} {}", r["system"], r["frame_len"]);
        assert!(
            r["max_delivered_frames"].as_u64().unwrap() > 0,
            "{who} delivered nothing at max load"
        );
        assert!(
            r["fixed_delivered_frames"].as_u64().unwrap() > 0,
            "{who} delivered nothing at the fixed rate"
        );
        assert!(
            r["zero_loss_fps"].as_f64().unwrap() > 0.0,
            "{who}: no zero-loss rate found"
        );
        assert!(
            r["cpu_ns_per_frame"].as_f64().unwrap() > 0.0,
            "{who}: no CPU figure"
        );
        assert_eq!(
            r["samples_max_delivered_fps"].as_array().unwrap().len(),
            3,
            "{who}: one sample per run"
        );
    }
    for system in ["kernel_macvlan", "mvdp_veth", "mvdp_tap"] {
        assert_eq!(
            results.iter().filter(|r| r["system"] == system).count(),
            2,
            "{system}"
        );
    }
    let ratios = v["ratios"].as_array().expect("ratios");
    assert_eq!(ratios.len(), 4, "2 mvdp systems x 2 sizes");
    for r in ratios {
        for f in [
            "system",
            "frame_len",
            "max_delivered_fps",
            "zero_loss_fps",
            "cpu_ns_per_frame",
        ] {
            assert!(r[f].is_number() || r[f].is_string(), "ratio lacks {f}: {r}");
        }
    }
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
