//! The Grafana dashboard and the Prometheus scrape config in `config/` against
//! the real exporter: every metric a panel queries must be one mvdp exposes,
//! with the labels the panel groups and filters by, and the dashboard must
//! import into any Grafana (its data source is a variable, not a fixed uid).
//!
//! The privileged test starts the real daemon on a small rig (its own
//! namespaces, removed in Drop), sends a few pings and scrapes `/metrics`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use common::*;
use serde_json::Value;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/grafana-dashboard.json");
const PROMETHEUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus.yml");
const RULES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus");
/// The data source variable every panel and query must go through.
const DS_VAR: &str = "${DS_PROMETHEUS}";
/// Labels Prometheus adds at scrape time; the exporter never exposes them.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// The families exported only while a network has `ipam = "dhcp"`, which
/// this rig has not: `tests/dhcp.rs` checks the dashboard's DHCP panels.
const DHCP_ONLY: &str = "mvdp_dhcp_";

fn dashboard() -> Value {
    let text =
        std::fs::read_to_string(DASHBOARD).unwrap_or_else(|e| panic!("read {DASHBOARD}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel, rows included, with the panels nested in collapsed rows.
fn panels(dash: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Every PromQL expression: panel targets' `expr` and query variables' `query`.
fn exprs(dash: &Value) -> Vec<String> {
    let mut out: Vec<String> = panels(dash)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = &v["query"];
            if let Some(q) = q.as_str().or_else(|| q["query"].as_str()) {
                out.push(q.to_string());
            }
        }
    }
    out
}

/// The `expr:` of every rule in `config/prometheus/mvdp-alerts.yml`
/// (one line, or a `|` block of the lines indented below it).
fn rule_exprs() -> Vec<String> {
    let path = format!("{RULES_DIR}/mvdp-alerts.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        if rest.trim() == "|" {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || indent(l) > indent(line))
                .map(|l| l.trim())
                .collect();
            out.push(block.join(" "));
        } else {
            out.push(rest.trim().to_string());
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// One use of an mvdp metric in an expression: its name, the exact-match
/// label matchers of its selector (`le="1"`), and the labels of the
/// enclosing `by (...)`, if the metric is the first one inside it.
#[derive(Debug, Default)]
struct Use {
    name: String,
    exact: Vec<(String, String)>,
    by: Vec<String>,
}

/// Finds every `mvdp_[a-z0-9_]+` token in `expr`, with its selector's exact
/// matchers and the grouping labels of a `by (...)` just before it.
fn metric_uses(expr: &str) -> Vec<Use> {
    let b = expr.as_bytes();
    let mut uses = Vec::new();
    let mut pending_by: Option<Vec<String>> = None;
    let mut i = 0;
    while i < b.len() {
        if expr[i..].starts_with("by (") && (i == 0 || !is_ident(b[i - 1])) {
            let open = i + "by (".len();
            let close = open + expr[open..].find(')').expect("`by (` is closed");
            pending_by = Some(
                expr[open..close]
                    .split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect(),
            );
            i = close + 1;
            continue;
        }
        if expr[i..].starts_with("mvdp_") && (i == 0 || !is_ident(b[i - 1])) {
            let end = i + b[i..]
                .iter()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || **c == b'_')
                .count();
            let mut u = Use {
                name: expr[i..end].to_string(),
                by: pending_by.take().unwrap_or_default(),
                ..Use::default()
            };
            if b.get(end) == Some(&b'{') {
                let close = end + expr[end..].find('}').expect("selector is closed");
                for m in expr[end + 1..close].split(',') {
                    // Only `key="value"`: regex and negative matchers may
                    // legitimately match nothing.
                    if let Some((k, v)) = m.split_once("=\"") {
                        if !k.ends_with(['!', '=', '~']) {
                            let v = v.trim_end().trim_end_matches('"');
                            u.exact.push((k.trim().to_string(), v.to_string()));
                        }
                    }
                }
                i = close;
            } else {
                i = end;
            }
            uses.push(u);
            continue;
        }
        i += 1;
    }
    uses
}

#[test]
fn dashboard_is_portable_and_complete() {
    let dash = dashboard();
    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!(schema >= 36, "schemaVersion {schema} < 36");
    assert!(
        dash["title"].as_str().is_some_and(|t| !t.trim().is_empty()),
        "dashboard has no title"
    );
    assert!(
        dash["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "dashboard has no uid (needed for stable links and provisioning)"
    );

    // The data source is the variable DS_PROMETHEUS (type datasource,
    // prometheus), so the dashboard imports into any Grafana and provisions
    // from a file without editing.
    let vars = dash["templating"]["list"].as_array().expect("templating");
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    let ds = var("DS_PROMETHEUS").expect("a DS_PROMETHEUS variable");
    assert_eq!(ds["type"], "datasource", "DS_PROMETHEUS: {ds}");
    assert_eq!(ds["query"], "prometheus", "DS_PROMETHEUS: {ds}");
    for name in ["instance", "endpoint"] {
        let v = var(name).unwrap_or_else(|| panic!("no `{name}` variable"));
        assert_eq!(v["type"], "query", "variable {name}: {v}");
    }

    // Every data source reference anywhere is the variable.
    fn check_refs(v: &Value, path: &str) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let here = format!("{path}.{k}");
                    if k == "datasource" {
                        let uid = child.as_str().or_else(|| child["uid"].as_str());
                        assert_eq!(uid, Some(DS_VAR), "{here} is not {DS_VAR}: {child}");
                    }
                    check_refs(child, &here);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    check_refs(child, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }
    check_refs(&dash, "$");

    let all = panels(&dash);
    let mut ids = BTreeSet::new();
    for p in &all {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.trim().is_empty(), "panel without a title: {p}");
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {title:?} has no id"));
        assert!(ids.insert(id), "panel id {id} used twice ({title})");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64(), g["w"].as_u64());
        assert!(
            matches!((x, w), (Some(x), Some(w)) if w > 0 && x + w <= 24),
            "panel {title:?}: gridPos {g} does not fit 24 columns"
        );
        if p["type"] == "row" {
            continue;
        }
        assert!(
            p.get("datasource").is_some(),
            "panel {title:?} has no datasource"
        );
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(expr.contains("mvdp_"), "panel {title:?}: query {t}");
            assert!(
                expr.contains("$instance"),
                "panel {title:?} ignores the instance variable: {expr}"
            );
        }
    }
    let exprs = exprs(&dash);
    assert!(
        exprs.iter().any(|e| e.contains("$endpoint")),
        "no query uses the endpoint variable"
    );
}

#[test]
fn prometheus_config_scrapes_the_default_listen_address() {
    let text =
        std::fs::read_to_string(PROMETHEUS).unwrap_or_else(|e| panic!("read {PROMETHEUS}: {e}"));
    // No YAML parser among the dependencies: check the live (uncommented)
    // lines for the keys a scrape config needs.
    let live: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(
        live.iter().any(|l| l.trim_end() == "scrape_configs:"),
        "{PROMETHEUS}: no top-level `scrape_configs:`"
    );
    assert!(
        live.iter()
            .any(|l| l.trim_start().starts_with("- job_name:")),
        "{PROMETHEUS}: no `- job_name:` entry"
    );
    let target = mvdp::config::DEFAULT_METRICS_LISTEN;
    assert!(
        live.iter()
            .any(|l| l.contains("targets:") && l.contains(&format!("\"{target}\""))),
        "{PROMETHEUS}: no live `targets:` line with mvdp's default {target:?}"
    );
    for l in &live {
        assert!(!l.contains('\t'), "{PROMETHEUS}: tab in YAML: {l:?}");
        if let Some(path) = l.trim().strip_prefix("metrics_path:") {
            assert_eq!(path.trim(), "/metrics", "{PROMETHEUS}: {l:?}");
        }
    }
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let mut d = Daemon::start(&rig, &rig.config_toml("veth", ""));
    d.wait_ready(Duration::from_secs(20));
    for c in &rig.containers {
        assert!(ping(&rig.wire, c.ip, 2), "wire -> {}", c.name);
    }

    let dash = dashboard();
    let uses: Vec<(String, Use)> = exprs(&dash)
        .into_iter()
        .flat_map(|e| metric_uses(&e).into_iter().map(move |u| (e.clone(), u)))
        .collect();
    let wanted: BTreeSet<&str> = uses.iter().map(|(_, u)| u.name.as_str()).collect();
    assert!(
        wanted.len() >= 10,
        "found only {} metric names in the dashboard: {wanted:?}",
        wanted.len()
    );

    // Some series appear only once a socket is bound or the XDP program is
    // attached: give the daemon a moment. Names are compared as exposed, so
    // a real histogram's `_bucket`/`_sum`/`_count` series would match as
    // such; mvdp's batch histogram is a plain counter per `le` bucket.
    let mut samples = Vec::new();
    let mut missing = Vec::new();
    wait_until(Duration::from_secs(5), || {
        samples = parse_prometheus(&d.metrics());
        missing = wanted
            .iter()
            .filter(|n| !n.starts_with(DHCP_ONLY) && !samples.iter().any(|s| s.name == **n))
            .copied()
            .collect();
        missing.is_empty()
    });
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the exporter does not expose: {missing:?}"
    );
    let received = sum_samples(&samples, "mvdp_frames_received_total", &[]).unwrap_or(0.0);
    assert!(received > 0.0, "no frames counted after the pings");

    // Labels: what a panel groups by and what it matches exactly must exist.
    let mut labels: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
    for s in &samples {
        let set = labels.entry(s.name.as_str()).or_default();
        for (k, v) in &s.labels {
            set.insert((k.as_str(), v.as_str()));
        }
    }
    for (expr, u) in uses.iter().filter(|(_, u)| !u.name.starts_with(DHCP_ONLY)) {
        let have = &labels[u.name.as_str()];
        for l in &u.by {
            assert!(
                TARGET_LABELS.contains(&l.as_str()) || have.iter().any(|(k, _)| k == l),
                "`by ({l})` on {} which has no label {l}: {expr}",
                u.name
            );
        }
        for (k, v) in &u.exact {
            assert!(
                have.contains(&(k.as_str(), v.as_str())),
                "{}{{{k}=\"{v}\"}} is not exposed: {expr}",
                u.name
            );
        }
    }

    // The alert rules ask only for what is exported, with label values that exist.
    let rules = rule_exprs();
    assert!(rules.len() >= 6, "found only {} alert rules", rules.len());
    for expr in &rules {
        for u in metric_uses(expr) {
            let have = labels.get(u.name.as_str()).unwrap_or_else(|| {
                panic!(
                    "an alert rule asks for {}, which is not exported: {expr}",
                    u.name
                )
            });
            for (k, v) in &u.exact {
                assert!(
                    have.contains(&(k.as_str(), v.as_str())),
                    "an alert rule asks for {}{{{k}=\"{v}\"}}, which is not exported: {expr}",
                    u.name
                );
            }
        }
    }

    // The other way round: every exported family is on the dashboard, and
    // every batch-size bucket the exporter has is one of its bars.
    let exported: BTreeSet<&str> = samples
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| n.starts_with("mvdp_"))
        .collect();
    let absent: Vec<&&str> = exported.difference(&wanted).collect();
    assert!(
        absent.is_empty(),
        "exported but on no panel of config/grafana-dashboard.json: {absent:?}"
    );
    let queried_size: BTreeSet<&str> = uses
        .iter()
        .filter(|(_, u)| u.name == "mvdp_worker_rx_batches_total")
        .flat_map(|(_, u)| u.exact.iter())
        .filter(|(k, _)| k == "size")
        .map(|(_, v)| v.as_str())
        .collect();
    for (k, v) in &labels["mvdp_worker_rx_batches_total"] {
        if *k == "size" {
            assert!(
                queried_size.contains(v),
                "batch bucket size=\"{v}\" is not on the dashboard"
            );
        }
    }

    // `promtool check metrics` (Debian's `prometheus` package) finds nothing
    // to complain about: HELP text on every family, units in names, `_total`
    // on counters; and the build and start-time series are there.
    for name in [
        "mvdp_build_info",
        "mvdp_start_time_seconds",
        "mvdp_worker_up",
    ] {
        assert!(labels.contains_key(name), "{name} is not exported");
    }
    let text = d.metrics();
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; `make deps` installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let complaints =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "promtool check metrics:\n{complaints}"
    );
    let status = d.stop();
    assert!(status.success(), "mvdp exit status {status}\n{}", d.log());
}

#[test]
fn metric_uses_finds_names_matchers_and_grouping() {
    let u = metric_uses(
        r#"sum by (instance, queue) (rate(mvdp_a_total{instance=~"$instance", le="+Inf"}[5m])) / (sum(mvdp_b) > 0) + notmvdp_c"#,
    );
    assert_eq!(u.len(), 2, "{u:?}");
    assert_eq!(u[0].name, "mvdp_a_total");
    assert_eq!(u[0].by, ["instance", "queue"]);
    assert_eq!(u[0].exact, [("le".to_string(), "+Inf".to_string())]);
    assert_eq!(u[1].name, "mvdp_b");
    assert!(u[1].by.is_empty() && u[1].exact.is_empty());
}

/// The alert rules load (`promtool check rules`) and behave as their unit
/// tests say (`promtool test rules`): each alert fires on the series it is
/// about and stays quiet on the others.
#[test]
fn alert_rules_pass_promtool_check_and_their_tests() {
    for args in [
        ["check", "rules", "mvdp-alerts.yml"],
        ["test", "rules", "mvdp-alerts.test.yml"],
        ["check", "config", "../prometheus.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(RULES_DIR)
            .output()
            .expect("promtool (Debian package prometheus; `make deps` installs it)");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
