//! The Kubernetes manifests (config/kubernetes/) against Kubernetes'
//! schemas, offline (PyPI's kubernetes-validate in target/k8s-venv, which
//! `make deps` installs); the Multus NetworkAttachmentDefinition, a CRD,
//! against a schema of its own and mvdp-cni's parser; the configs inside
//! them against mvdp's parsers; and the DaemonSet's command lines against
//! the ones the README documents.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn manifest(name: &str) -> PathBuf {
    Path::new(ROOT).join("config/kubernetes").join(name)
}

/// The venv's binary `name`, or `None` after a loud skip (a failure under CI=true).
fn venv_tool(name: &str) -> Option<PathBuf> {
    let path = Path::new(ROOT).join("target/k8s-venv/bin").join(name);
    require_command(path.to_str().unwrap(), "PyPI kubernetes-validate in a venv").then_some(path)
}

/// Every YAML document of `file`, as JSON (PyYAML from the venv).
fn documents(python: &Path, file: &Path) -> Vec<Value> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file)
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `kubernetes-validate --strict FILES`: (success, output).
fn validate(tool: &Path, files: &[&Path]) -> (bool, String) {
    let out = Command::new(tool)
        .arg("--strict")
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn manifests_validate_against_kubernetes_schemas() {
    let Some(tool) = venv_tool("kubernetes-validate") else {
        return;
    };
    let (cm, ds) = (manifest("configmap.yaml"), manifest("daemonset.yaml"));
    let (ok, out) = validate(&tool, &[&cm, &ds]);
    assert!(ok, "kubernetes-validate:\n{out}");
    for resource in ["configmap/mvdp-config", "daemonset/mvdp"] {
        assert!(
            out.contains(&format!("passed for resource {resource}")),
            "{resource} not validated:\n{out}"
        );
    }
    // The validator bites: a misspelt key fails strict validation.
    let bad = std::env::temp_dir()
        .join(unique("cni-ds-"))
        .with_extension("yaml");
    let text = std::fs::read_to_string(&ds).unwrap();
    std::fs::write(&bad, text.replace("hostNetwork: true", "hostNetwrok: true")).unwrap();
    let (ok, out) = validate(&tool, &[&bad]);
    let _ = std::fs::remove_file(&bad);
    assert!(!ok, "a misspelt key passed:\n{out}");
}

#[test]
fn network_attachment_definition_matches_its_crd_and_mvdp_cni() {
    let Some(python) = venv_tool("python") else {
        return;
    };
    let nad_file = manifest("network-attachment-definition.yaml");
    let schema = manifest("schemas/network-attachment-definition.json");
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys, json, yaml, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             for doc in yaml.safe_load_all(open(sys.argv[2])):\n    jsonschema.validate(doc, schema)\n\
             print('valid')",
        ])
        .arg(&schema)
        .arg(&nad_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "NetworkAttachmentDefinition vs its schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nad = &documents(&python, &nad_file)[0];
    let config = nad["spec"]["config"].as_str().expect("spec.config");
    let conf = mvdp::cni::conf::NetConf::parse(config.as_bytes())
        .unwrap_or_else(|e| panic!("mvdp-cni refuses the NAD's config: {e}"));
    assert_eq!(conf.name, nad["metadata"]["name"], "CNI name vs NAD name");
    assert_eq!(conf.ipam_type.as_deref(), Some("host-local"));
    let cni: Value = serde_json::from_str(config).unwrap();
    assert_eq!(cni["type"], "mvdp-cni");

    // It names a network of the ConfigMap's config, with its mode, and
    // the socket the daemon listens on.
    let cm = &documents(&python, &manifest("configmap.yaml"))[0];
    let toml = cm["data"]["mvdp.toml"].as_str().expect("data.mvdp.toml");
    let mvdp = mvdp::config::Config::parse(toml)
        .unwrap_or_else(|e| panic!("the ConfigMap's mvdp.toml: {e}"));
    assert!(
        mvdp.networks.iter().any(|n| n.name == conf.master),
        "master {:?} is no network of the ConfigMap's config",
        conf.master
    );
    assert_eq!(
        conf.socket, mvdp.control.socket,
        "socket vs [control] socket"
    );
}

#[test]
fn daemonset_runs_the_documented_commands() {
    let Some(python) = venv_tool("python") else {
        return;
    };
    let ds = &documents(&python, &manifest("daemonset.yaml"))[0];
    let spec = &ds["spec"]["template"]["spec"];
    let mut commands = BTreeMap::new();
    for c in spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(spec["containers"].as_array().unwrap())
    {
        let line: Vec<&str> = c["command"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(c["args"].as_array().into_iter().flatten())
            .map(|a| a.as_str().unwrap())
            .collect();
        commands.insert(c["name"].as_str().unwrap().to_string(), line.join(" "));
    }
    // The README's Kubernetes section lists `<container>  <command line>`
    // in a code block.
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Kubernetes"))
        .expect("README has a Kubernetes section");
    let documented: BTreeMap<String, String> = section
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(char::is_whitespace)?;
            let rest = rest.trim();
            rest.starts_with("/usr/local/bin/")
                .then(|| (name.to_string(), rest.to_string()))
        })
        .collect();
    assert_eq!(commands, documented, "DaemonSet vs README");

    // Every host path the daemon needs is mounted, and the probe scrapes
    // the metrics port of the ConfigMap's config.
    let main = &spec["containers"][0];
    let mounts: Vec<&str> = main["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for path in ["/etc/mvdp", "/run/mvdp", "/var/run/netns"] {
        assert!(mounts.contains(&path), "{path} not mounted: {mounts:?}");
    }
    assert_eq!(spec["hostNetwork"], true);
    let cm = &documents(&python, &manifest("configmap.yaml"))[0];
    let mvdp = mvdp::config::Config::parse(cm["data"]["mvdp.toml"].as_str().unwrap()).unwrap();
    let probe = &main["livenessProbe"]["httpGet"];
    assert_eq!(
        format!("{}:{}", probe["host"].as_str().unwrap(), probe["port"]),
        mvdp.metrics.listen.to_string(),
        "liveness probe vs [metrics] listen"
    );
    assert_eq!(probe["path"], "/metrics");
}
